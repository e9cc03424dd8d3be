"""Typer app: each command parses options into config, calls a stage, prints a summary."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from pipeline import __version__
from pipeline.config import (
    DEFAULT_CHECKPOINT_DIR,
    DEFAULT_DATA_DIR,
    DataConfig,
    PipelineError,
    StageInterrupted,
)

app = typer.Typer(
    help="MNIST experiments from two classic TensorFlow notebooks, tracked in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DataDir = typer.Option(DEFAULT_DATA_DIR, "--data-dir", help="Where the MNIST cache lives.")
CheckpointDir = typer.Option(
    DEFAULT_CHECKPOINT_DIR, "--checkpoint-dir", help="Where per-run checkpoints are kept."
)


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


@app.command()
def train(
    arch: str = typer.Option("lstm", "--arch", help="Architecture: mlp or lstm."),
    preset: str = typer.Option(
        "default", "--preset", help="default (modern choices) or seed (the notebook exactly)."
    ),
    learning_rate: float = typer.Option(None, "--learning-rate", help="Adam learning rate."),
    hidden_size: int = typer.Option(None, "--hidden-size", help="Hidden units per layer."),
    epochs: int = typer.Option(None, "--epochs", help="Passes over the training split."),
    batch_size: int = typer.Option(None, "--batch-size", help="Images per step."),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many steps."),
    seed: int = typer.Option(0, "--seed", help="Seed for split, initialisation and shuffling."),
    validation_fraction: float = typer.Option(
        0.1, "--validation-fraction", help="Share of the training set held out for validation."
    ),
    resume: str = typer.Option(
        None, "--resume", help="Continue the interrupted run RUN_ID from its checkpoint."
    ),
    data_dir: Path = DataDir,
    checkpoint_dir: Path = CheckpointDir,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show live bars."),
) -> None:
    """Train one architecture and track params, per-step metrics and the model in MLflow."""
    from pipeline.config import train_config

    config = train_config(
        arch,
        preset,
        learning_rate=learning_rate,
        hidden_size=hidden_size,
        epochs=epochs,
        batch_size=batch_size,
        max_steps=max_steps,
        seed=seed,
        validation_fraction=validation_fraction,
    )
    from pipeline import training

    result = training.train(config, data_dir, checkpoint_dir, resume, progress)
    print_train_summary(result)


def print_train_summary(result) -> None:
    """One screen: what was trained, how well, how fast, and where to look."""
    from pipeline.config import tracking_uri

    config = result.config
    typer.echo(
        f"\nTrained {config.arch} ({config.preset} preset): {result.steps} steps, "
        f"{config.epochs} epochs in {result.seconds:.1f} s "
        f"({result.samples_per_second:,.0f} samples/s)\n"
        f"  val_accuracy {result.val_accuracy:.4f}   val_loss {result.val_loss:.4f}\n"
        f"  run   {result.run_id}\n"
        f"  model {result.model_uri}\n"
        f"  UI    mlflow ui --backend-store-uri {tracking_uri()}  then open\n"
        f"        http://127.0.0.1:5000/#/experiments/{result.experiment_id}/runs/{result.run_id}"
    )


@app.command()
def evaluate(
    run_id: str = typer.Option(None, "--run-id", help="A finished train run."),
    model_uri: str = typer.Option(
        None, "--model-uri", help="runs:/RUN_ID/model, models:/NAME@ALIAS or models:/NAME/VERSION."
    ),
    register: bool = typer.Option(
        True, "--register/--no-register", help="Register the model; champion gate applies."
    ),
    data_dir: Path = DataDir,
) -> None:
    """Score a model on the official test set, log figures, and gate the champion alias."""
    from pipeline import evaluation

    result = evaluation.evaluate_run(data_dir, run_id, model_uri, register)
    print_eval_summary(result)


def print_eval_summary(result) -> None:
    """Accuracy, loss, the most-confused pairs, the champion decision and the UI path."""
    from pipeline.config import tracking_uri

    pairs = ", ".join(f"{true}→{pred} ({count})" for true, pred, count in result.confused_pairs)
    lines = [
        f"Evaluated {result.model_uri} ({result.arch}) on the official test set",
        f"  test_accuracy {result.test_accuracy:.4f}   test_loss {result.test_loss:.4f}",
        f"  most confused (true→predicted): {pairs or 'none'}",
    ]
    if result.registration:
        lines.append(f"  registry: {result.registration.describe()}")
    lines.append(
        f"  UI: mlflow ui --backend-store-uri {tracking_uri()}  then open "
        f"http://127.0.0.1:5000/#/experiments/{result.experiment_id}/runs/{result.run_id}"
    )
    typer.echo("\n".join(lines))


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
    if code == 130 and message is None:  # Typer's answer to Ctrl-C outside any run
        message = "interrupted by SIGINT"
    if message:
        typer.echo(f"Error: {message}", err=True)
    sys.exit(code if isinstance(code, int) else 0)
