"""Typer app: each command parses options into config, calls a stage, prints a summary."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import typer

from pipeline import __version__
from pipeline.config import DEFAULT_DATA_DIR, DataConfig, PipelineError

app = typer.Typer(
    help="MNIST experiments from two classic TensorFlow notebooks, tracked in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DataDir = typer.Option(DEFAULT_DATA_DIR, "--data-dir", help="Where the MNIST cache lives.")


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


@app.command()
def download(
    data_dir: Path = DataDir,
    source: str = typer.Option(
        None, "--source", help="A folder, file:// or http(s):// URL holding the four IDX files."
    ),
    mirror: list[str] = typer.Option(
        None, "--mirror", help="Mirror base URL to try (repeatable; replaces the default list)."
    ),
    force: bool = typer.Option(False, "--force", help="Fetch again even if verified data exists."),
) -> None:
    """Fetch, verify and cache the MNIST files, and log a download run."""
    from pipeline import fetch, tracking
    from pipeline.console import byte_progress

    data_config = DataConfig(data_dir=data_dir, source=source)
    if mirror:
        data_config = DataConfig(data_dir=data_dir, source=source, mirrors=tuple(mirror))
    tracking.setup()
    with byte_progress() as progress:
        result = fetch.download(data_config, force=force, progress=progress)
    if result.skipped:
        typer.echo(
            f"Verified MNIST already in {data_dir} (digest {result.digest}); nothing fetched. "
            f"Use --force to fetch again."
        )
        return
    run_id = tracking.log_download_run(result)
    kind = "official MNIST" if result.official else "NOT the official MNIST set"
    typer.echo(
        f"Cached {result.counts['train']} training and {result.counts['test']} test images "
        f"({kind}) in {data_dir}\n"
        f"dataset digest {result.digest}; MLflow run {run_id}"
    )


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every expected failure is one line on stderr and a non-zero exit."""
    try:
        code = app(args=argv, prog_name="pipeline", standalone_mode=False)
    except click.exceptions.Abort:
        code = 130
        typer.echo("Error: interrupted", err=True)
    except click.ClickException as error:
        typer.echo(f"Error: {error.format_message()}", err=True)
        code = error.exit_code
    except PipelineError as error:
        typer.echo(f"Error: {error}", err=True)
        code = 1
    except KeyboardInterrupt as error:
        typer.echo(f"Error: {error or 'interrupted'}; the run was marked KILLED", err=True)
        code = 128 + getattr(error, "signal_number", 2)
    sys.exit(code if isinstance(code, int) else 0)
