"""The Typer app: its commands (declared by family in the *_command(s) modules: each parses its
options into a config, calls one stage, prints a summary) and the console entry point that turns
every expected failure into one line.

Options default to None ("not given"): the config dataclasses and the registry decide. Heavy
modules (TensorFlow, mlflow) are imported inside the commands, after the options are checked.
"""

from __future__ import annotations

import sys

import typer

from pipeline import __version__
from pipeline.cli import job_commands, stage_commands, store_commands, tune_command
from pipeline.errors import (
    PipelineError,
    StageInterrupted,
    environment_failure,
    redact_text,
)

app = typer.Typer(
    help="MNIST experiments from two classic TensorFlow notebooks, tracked in MLflow.",
    # Click's plain help: Rich's panels cut long option names at 80 columns.
    rich_markup_mode=None,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Stages of the MNIST pipeline; `pipeline STAGE --help` for each."""


app.command()(stage_commands.download)
app.command()(stage_commands.train)
app.command()(stage_commands.evaluate)
app.command()(tune_command.tune)
app.command("main")(job_commands.main_job)
app.command()(job_commands.report)
app.command()(store_commands.ui)
app.command()(store_commands.reap)
app.command("init-stores")(store_commands.init_stores)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every expected failure is one line on stderr and a non-zero exit."""
    message = None
    try:
        code = app(args=argv, prog_name="pipeline", standalone_mode=False)
    except typer.Abort:
        code, message = 130, "aborted"
    except typer.TyperException as error:  # usage errors: unknown option, not a number, ...
        code = getattr(error, "exit_code", 2)
        message = error.format_message() if hasattr(error, "format_message") else str(error)
    except PipelineError as error:
        code, message = 1, str(error)
    except StageInterrupted as error:
        code, message = 128 + error.signal_number, str(error)
    except Exception as error:
        code, message = 1, environment_failure(error)
        if message is None:  # a bug: the traceback is the useful output
            raise
    if code == 130 and message is None:  # Typer's answer to Ctrl-C outside any run
        message = "interrupted by SIGINT"
    if message:
        typer.echo(f"Error: {redact_text(message)}", err=True)
    sys.exit(code if isinstance(code, int) else 0)


def run(argv: list[str] | None = None) -> None:
    """The console script (and `python -m pipeline`): main(), then a quick exit."""
    from pipeline import fast_exit

    # Each progress line reaches a pipe or a log file as it is printed, not at exit.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    try:
        main(argv)
        code = 0
    except SystemExit as stop:
        code = fast_exit.exit_code(stop.code)
    fast_exit.leave(code)
