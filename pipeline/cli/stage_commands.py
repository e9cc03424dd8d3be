"""The commands of the stages one model goes through: download, train, evaluate."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline import config as cfg
from pipeline.cli import console, edge
from pipeline.cli.options import (
    PRESET_VALUE,
    Arch,
    CheckpointDir,
    DataDir,
    Preset,
    Seed,
    Source,
    SystemMetrics,
    ValidationFraction,
    checkpoint_dir_of,
    data_dir_of,
    fields_given,
    option,
)
from pipeline.config import DataConfig, TrainConfig
from pipeline.early_stopping import FIRST_EPOCH
from pipeline.errors import PipelineError, StageInterrupted


def download(
    data_dir: DataDir = None,
    source: Source = None,
    mirrors: Annotated[
        list[str] | None,
        option(
            "--mirror",
            help="Mirror base URL to try (repeatable; replaces the default list: "
            f"{', '.join(cfg.MIRRORS)}).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force/--no-force", help="Fetch again even if verified data exists.")
    ] = False,
) -> None:
    """Fetch, verify and cache the MNIST files, and log a download run."""
    from pipeline import downloading, fetch, interrupts

    data_config = DataConfig(**fields_given(DataConfig, {**locals(), "mirrors": _tuple(mirrors)}))
    try:
        with interrupts.raising(), console.byte_progress() as progress:  # SIGTERM: no staging left
            result = fetch.download(data_config, force=force, progress=progress)
            # A verified cache is a no-op: no run, and no store opened (nor MLflow imported).
            run_id = (
                None if result.skipped else downloading.record(result, store=edge.tracking_store())
            )
    except interrupts.Interrupted as error:
        raise StageInterrupted(None, error.signal_number) from None
    console.print_download_summary(result, run_id)


def _tuple(values: list[str] | None) -> tuple[str, ...] | None:
    return tuple(values) if values else None


def train(
    arch: Arch = None,
    preset: Preset = None,
    learning_rate: Annotated[
        float | None, option("--learning-rate", help=f"Adam learning rate {PRESET_VALUE}.")
    ] = None,
    hidden_size: Annotated[
        int | None, option("--hidden-size", help=f"Hidden units per layer {PRESET_VALUE}.")
    ] = None,
    epochs: Annotated[
        int | None, option("--epochs", help=f"Passes over the training split {PRESET_VALUE}.")
    ] = None,
    batch_size: Annotated[
        int | None, option("--batch-size", help=f"Images per step {PRESET_VALUE}.")
    ] = None,
    max_steps: Annotated[
        int | None,
        option(
            "--max-steps",
            help="Stop after this many steps (default: the seed preset's step budget, else none).",
        ),
    ] = None,
    learning_rate_schedule: Annotated[
        str | None,
        option(
            "--learning-rate-schedule",
            help=f"One of {', '.join(cfg.SCHEDULES)}; cosine decays to 0 over the run "
            f"{PRESET_VALUE}.",
        ),
    ] = None,
    seed: Seed = None,
    validation_fraction: ValidationFraction = None,
    early_stopping: Annotated[
        bool | None,
        option(
            "--early-stopping/--no-early-stopping",
            help=f"Keep the model after the epoch (from {FIRST_EPOCH} on) of best validation "
            "accuracy, --epochs the ceiling, as a study's trials do (default: on at a constant "
            "learning rate without --max-steps).",
        ),
    ] = None,
    resume: Annotated[
        str | None,
        option(
            "--resume",
            help="Continue the interrupted run RUN_ID from its checkpoint (default: a new run).",
        ),
    ] = None,
    data_dir: DataDir = None,
    checkpoint_dir: CheckpointDir = None,
    progress: Annotated[
        bool,
        typer.Option(
            "--progress/--no-progress",
            help="Show progress: live bars on a terminal, a line per epoch otherwise.",
        ),
    ] = True,
    log_checkpoints: Annotated[
        bool,
        typer.Option(
            "--log-checkpoints/--no-log-checkpoints",
            help="Also log each epoch's model as an MLflow logged model.",
        ),
    ] = False,
    system_metrics: SystemMetrics = None,
) -> None:
    """Train one architecture and track params, per-step metrics and the model in MLflow."""
    config = _train_config(resume, fields_given(TrainConfig, locals()))
    from pipeline import training

    store = edge.tracking_store(system_metrics)
    result = training.train(
        config,
        data_dir_of(data_dir),
        checkpoint_dir_of(checkpoint_dir),
        resume,
        console.training_progress(progress),
        log_checkpoints=log_checkpoints,
        store=store,
    )
    console.print_train_summary(result)


def _train_config(resume: str | None, options: dict) -> TrainConfig | None:
    """The config the options make; None to resume, which refuses options that change a run."""
    if resume and options:
        names = ", ".join("--" + name.replace("_", "-") for name in options)
        raise PipelineError(
            f"--resume {resume} continues the run with its own settings; drop {names}"
        )
    return None if resume else cfg.train_config(**options)


def evaluate(
    run_id: Annotated[
        str | None,
        option("--run-id", help="A finished train run (give this or --model-uri; no default)."),
    ] = None,
    model_uri: Annotated[
        str | None, option("--model-uri", help=f"{cfg.MODEL_URI_FORMS} (no default).")
    ] = None,
    register: Annotated[
        bool,
        typer.Option(
            "--register/--no-register", help="Register the model; champion gate applies."
        ),
    ] = True,
    data_dir: DataDir = None,
    system_metrics: SystemMetrics = None,
) -> None:
    """Score a model on the test set, log figures, and gate the champion alias."""
    if bool(run_id) == bool(model_uri):
        raise PipelineError("give exactly one of --run-id or --model-uri")
    from pipeline import evaluation

    store = edge.tracking_store(system_metrics)
    result = evaluation.evaluate_run(
        data_dir_of(data_dir), run_id, model_uri, register, store=store
    )
    console.print_eval_summary(result)
