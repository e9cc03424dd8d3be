"""The tune command: an Optuna study per architecture, one MLflow run per trial."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline import architectures, data, paired
from pipeline import config as cfg
from pipeline import tune_config as tune_cfg
from pipeline.cli import console, edge
from pipeline.cli.options import (
    Arches,
    CheckpointDir,
    DataDir,
    Seed,
    Storage,
    SystemMetrics,
    ValidationFraction,
    checkpoint_dir_of,
    data_dir_of,
    default_of,
    fields_given,
    option,
)
from pipeline.early_stopping import FIRST_EPOCH
from pipeline.tune_config import TuneConfig


def _default(field: str) -> str:
    return f"(default: {default_of(TuneConfig, field)})"


def _per_arch(value) -> str:
    """value(architecture) for each architecture, in words: "32..1024 (mlp), 32..512 (lstm)"."""
    return ", ".join(f"{value(each)} ({each.name})" for each in architectures.REGISTRY.values())


def tune(
    arch: Arches = None,
    n_trials: Annotated[
        int | None,
        option("--n-trials", help=f"Trials this worker runs, per arch {_default('n_trials')}."),
    ] = None,
    timeout_seconds: Annotated[
        float | None,
        option("--timeout", help="Stop starting trials after SECONDS (default: no limit)."),
    ] = None,
    study_name: Annotated[
        str | None,
        option(
            "--study-name",
            help="(default: mnist-ARCH; data-ARCH on data whose test set is not MNIST's).",
        ),
    ] = None,
    storage: Storage = None,
    sampler: Annotated[
        str | None,
        option("--sampler", help=f"One of {', '.join(cfg.SAMPLERS)} {_default('sampler')}."),
    ] = None,
    pruner: Annotated[
        str | None,
        option("--pruner", help=f"One of {', '.join(cfg.PRUNERS)} {_default('pruner')}."),
    ] = None,
    seed: Seed = None,
    learning_rate_range: Annotated[
        tuple[float, float] | None,
        option(
            "--learning-rate-range",
            help="LOW HIGH, searched log-uniformly; widened past an edge the best lies at "
            f"(see --widen) (default: {tune_cfg.LEARNING_RATE_RANGE}).",
        ),
    ] = None,
    hidden_size_range: Annotated[
        tuple[int, int] | None,
        option(
            "--hidden-size-range",
            help="LOW HIGH hidden units, log-uniform integers (default: "
            + _per_arch(lambda arch: "..".join(map(str, arch.hidden_sizes)))
            + ").",
        ),
    ] = None,
    epochs_range: Annotated[
        tuple[int, int] | None,
        option(
            "--epochs-range",
            help=f"LOW HIGH epochs (default: {FIRST_EPOCH} to the default preset's).",
        ),
    ] = None,
    search: Annotated[
        str | None,
        option(
            "--search",
            help="standard (learning rate, hidden size, epochs) or wide (also batch size "
            f"{'/'.join(map(str, tune_cfg.BATCH_SIZES))} and learning-rate schedule) "
            f"{_default('search')}.",
        ),
    ] = None,
    start_from: Annotated[
        str | None,
        option(
            "--start-from",
            help=f"Preset ({', '.join(architectures.preset_names())}) the trials build on; "
            f"trial 0 when the ranges hold it {_default('start_from')}.",
        ),
    ] = None,
    validation_fraction: ValidationFraction = None,
    folds: Annotated[
        int | None,
        option(
            "--folds",
            help="Score each trial by K-fold cross-validation, pruning on its first fold; 1: "
            f"one validation split {_default('folds')}.",
        ),
    ] = None,
    widen: Annotated[
        bool,
        typer.Option(
            "--widen/--no-widen",
            help="Before each trial, grow a range past an edge the study's best lies at (within "
            f"{tune_cfg.EDGE_SHARE:.0%} of its width) by {tune_cfg.WIDEN_SHARE:.0%} of its width, "
            "up to learning rates "
            + "..".join(f"{v:g}" for v in tune_cfg.RANGE_LIMITS["learning_rate"])
            + ", hidden sizes "
            + _per_arch(lambda arch: f"{tune_cfg.HIDDEN_SIZE_FLOOR}..{arch.hidden_size_limit}")
            + ", epochs "
            + "..".join(f"{v:g}" for v in tune_cfg.RANGE_LIMITS["epochs"])
            + "; the summary names a best still at an edge.",
        ),
    ] = True,
    retrain_best: Annotated[
        bool,
        typer.Option(
            "--retrain-best/--no-retrain-best",
            help="Train, evaluate and register the best configuration, if it beats trial 0 "
            f"beyond noise (p < {paired.LEVEL}).",
        ),
    ] = False,
    heartbeat_seconds: Annotated[
        int | None,
        option(
            "--heartbeat",
            help="Seconds between trial heartbeats; a worker silent for the grace period "
            f"({cfg.HEARTBEAT_GRACE_BEATS} of them) is dead {_default('heartbeat_seconds')}.",
        ),
    ] = None,
    trials_per_process: Annotated[
        int | None,
        option(
            "--trials-per-process",
            help="Trials one process runs before a fresh one takes over (Keras keeps part of "
            f"every fit) {_default('trials_per_process')}.",
        ),
    ] = None,
    data_dir: DataDir = None,
    checkpoint_dir: CheckpointDir = None,
    system_metrics: SystemMetrics = None,
) -> None:
    """Search learning rate, hidden size and epochs with Optuna; one MLflow run per trial.

    Budget: on the MNIST subset a default 20-trial MLP study trained 245 of an unpruned one's
    400 epochs in 16 CPU-minutes (its hidden sizes widened to 2,048 before trial 12); one whose
    epochs widen costs more (from the seed preset: 19 and 33 CPU-minutes); the summary says when
    the search had not settled.
    """
    named = data.data_name(data_dir_of(data_dir))  # data other than MNIST's: data-ARCH
    config = TuneConfig(**fields_given(TuneConfig, locals()), data_name=named)
    store = None
    for each in config.arches():
        console.print_tune_start(config, each)  # before the seconds of importing Optuna, MLflow
        store = store or edge.tracking_store(system_metrics)
        from pipeline.tuning import study

        result = study.tune_arch(
            config,
            each,
            data_dir_of(data_dir),
            checkpoint_dir_of(checkpoint_dir),
            console.print_trial,
            on_status=console.print_status,
            store=store,
        )
        console.print_study_summary(result)
