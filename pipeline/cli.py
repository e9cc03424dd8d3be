"""Typer app: each command parses options into config, calls a stage, prints a summary."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from pipeline import __version__, console
from pipeline.config import (
    DEFAULT_CHECKPOINT_DIR,
    DEFAULT_DATA_DIR,
    DEFAULT_OPTUNA_STORAGE,
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

    mirrors = {"mirrors": tuple(mirror)} if mirror else {}
    data_config = DataConfig(data_dir=data_dir, source=source, **mirrors)
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
    learning_rate_schedule: str = typer.Option(
        None, "--learning-rate-schedule", help="constant or cosine (decay to 0 over the run)."
    ),
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
        learning_rate_schedule=learning_rate_schedule,
        seed=seed,
        validation_fraction=validation_fraction,
    )
    from pipeline import training

    result = training.train(config, data_dir, checkpoint_dir, resume, progress)
    console.print_train_summary(result)


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
    console.print_eval_summary(result)


@app.command()
def tune(
    arch: str = typer.Option("mlp", "--arch", help="mlp, lstm or both."),
    n_trials: int = typer.Option(20, "--n-trials", help="Trials this worker runs (per arch)."),
    timeout: float = typer.Option(None, "--timeout", help="Stop starting trials after SECONDS."),
    study_name: str = typer.Option(None, "--study-name", help="Default: mnist-ARCH."),
    storage: str = typer.Option(
        DEFAULT_OPTUNA_STORAGE, "--storage", help="Optuna storage URL (sqlite, postgresql, ...)."
    ),
    sampler: str = typer.Option("tpe", "--sampler", help="tpe or random."),
    pruner: str = typer.Option("hyperband", "--pruner", help="hyperband, median or none."),
    seed: int = typer.Option(0, "--seed", help="Sampler seed, split and initialisation."),
    learning_rate_range: tuple[float, float] = typer.Option(
        (1e-4, 1e-2), "--learning-rate-range", help="LOW HIGH, searched log-uniformly."
    ),
    hidden_size_range: tuple[int, int] = typer.Option(
        (32, 512), "--hidden-size-range", help="LOW HIGH hidden units, log-uniform integers."
    ),
    epochs_range: tuple[int, int] = typer.Option(
        None, "--epochs-range", help="LOW HIGH epochs (default 2..20 MLP, 2..10 LSTM)."
    ),
    validation_fraction: float = typer.Option(0.1, "--validation-fraction"),
    retrain_best: bool = typer.Option(
        False, "--retrain-best", help="Train, evaluate and register the best configuration."
    ),
    heartbeat: int = typer.Option(
        10, "--heartbeat", help="Seconds between trial heartbeats; 3 missed = worker dead."
    ),
    data_dir: Path = DataDir,
    checkpoint_dir: Path = CheckpointDir,
) -> None:
    """Search learning rate, hidden size and epochs with Optuna; one MLflow run per trial."""
    from pipeline.config import TuneConfig

    config = TuneConfig(
        arch=arch, n_trials=n_trials, timeout_seconds=timeout, study_name=study_name,
        storage=storage, sampler=sampler, pruner=pruner, seed=seed,
        learning_rate_range=learning_rate_range, hidden_size_range=hidden_size_range,
        epochs_range=epochs_range, validation_fraction=validation_fraction,
        retrain_best=retrain_best, heartbeat_seconds=heartbeat,
    )  # fmt: skip
    from pipeline import tuning

    for each in config.arches():
        result = tuning.tune_arch(config, each, data_dir, checkpoint_dir, console.print_trial)
        typer.echo(
            f"Study {result.study_name}: {result.trials} finished trials "
            f"({result.pruned} pruned), "
            f"best val_accuracy {result.best_value if result.best_value is not None else 'n/a'} "
            f"with {result.best_params}; MLflow parent run {result.parent_run_id}"
        )
        if result.retrained:
            console.print_eval_summary(result.retrained)


@app.command("main")
def main_job(
    preset: str = typer.Option("default", "--preset", help="default or seed, for both archs."),
    arch: str = typer.Option("both", "--arch", help="mlp, lstm or both."),
    tune: bool = typer.Option(False, "--tune/--no-tune", help="Tune each arch first."),
    n_trials: int = typer.Option(10, "--n-trials", help="Trials per arch when tuning."),
    storage: str = typer.Option(DEFAULT_OPTUNA_STORAGE, "--storage", help="Optuna storage URL."),
    source: str = typer.Option(None, "--source", help="Local MNIST folder or URL (offline)."),
    data_dir: Path = DataDir,
    checkpoint_dir: Path = CheckpointDir,
    report_dir: Path = typer.Option(
        Path("reports"), "--report-dir", help="Where the report goes."
    ),
) -> None:
    """Download, (tune,) train and evaluate both archs, then report: one parent run."""
    from pipeline import workflow
    from pipeline.config import ARCHITECTURES

    config = workflow.MainConfig(
        data=DataConfig(data_dir=data_dir, source=source), preset=preset, tune=tune,
        n_trials=n_trials, storage=storage, checkpoint_dir=checkpoint_dir, report_dir=report_dir,
        archs=ARCHITECTURES if arch == "both" else (arch,),
    )  # fmt: skip
    result = workflow.run_main(config, say=typer.echo)
    reused = sum(1 for _, _, was_reused in result.steps if was_reused)
    typer.echo(f"main run {result.run_id}: {len(result.steps)} steps, {reused} reused")


@app.command()
def report(
    experiment: str = typer.Option(
        None, "--experiment", help="Default: MLFLOW_EXPERIMENT_NAME or mnist."
    ),
    run_id: list[str] = typer.Option(None, "--run-id", help="Only these runs (repeatable)."),
    output_dir: Path = typer.Option(Path("reports"), "--output-dir", help="Where to write."),
) -> None:
    """Compare architectures, presets and tuned runs with the notebooks: reports/report.md."""
    from pipeline import reporting

    written = reporting.write_report(output_dir, experiment, run_id or None)
    typer.echo(reporting.markdown_table(written.table.drop(columns=["run_id"])))
    typer.echo(f"\nWrote {output_dir / 'report.md'} and figures; report run {written.run_id}")


@app.command()
def ui(
    port: int = typer.Option(5000, "--port", help="Port on 127.0.0.1."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface; loopback unless you mean it."
    ),
    storage: str = typer.Option(DEFAULT_OPTUNA_STORAGE, "--storage", help="Optuna storage URL."),
) -> None:
    """Start the MLflow UI on the project's store (and say how to open optuna-dashboard)."""
    import importlib.util
    import subprocess

    from pipeline.config import tracking_uri

    if importlib.util.find_spec("optuna_dashboard"):
        typer.echo(f"Optuna studies: optuna-dashboard {storage}")
    else:
        typer.echo(f"Optuna studies: pip install optuna-dashboard && optuna-dashboard {storage}")
    typer.echo(f"MLflow UI on http://{host}:{port} (Ctrl-C stops it)")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri()]
    raise typer.Exit(subprocess.call([*command, "--host", host, "--port", str(port)]))


@app.command()
def reap(
    stale_after: float = typer.Option(
        None, "--stale-after", help="Seconds without a heartbeat (default: 4 heartbeats)."
    ),
) -> None:
    """Mark runs whose process died (no heartbeat) KILLED; live runs elsewhere are left alone."""
    if stale_after is not None and not stale_after > 0:
        raise PipelineError(f"--stale-after must be > 0 seconds (got {stale_after})")
    from pipeline import heartbeat, tracking

    tracking.setup()  # reaps with the default lease
    reaped = heartbeat.reap(stale_after)
    typer.echo(f"{len(reaped)} more stale run(s) marked KILLED" if reaped else "No stale runs.")


@app.command("init-stores")
def init_stores(
    storage: str = typer.Option(DEFAULT_OPTUNA_STORAGE, "--storage", help="Optuna storage URL."),
) -> None:
    """Create the MLflow and Optuna schemas once, before parallel tune workers start."""
    from pipeline import tracking, tuning

    uri = tracking.setup()
    tuning.init_storage(storage)
    typer.echo(
        f"Ready: MLflow store {tracking.redact(uri)}, Optuna storage {tracking.redact(storage)}"
    )


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
    except Exception as error:  # the environment failing: disk, permissions, an MLflow store
        if not (isinstance(error, OSError) or type(error).__module__.startswith("mlflow")):
            raise
        lines = str(error).strip().splitlines() or [type(error).__name__]
        code, message = 1, f"{type(error).__name__}: {lines[0][:300]}"
    if code == 130 and message is None:  # Typer's answer to Ctrl-C outside any run
        message = "interrupted by SIGINT"
    if message:
        typer.echo(f"Error: {message}", err=True)
    sys.exit(code if isinstance(code, int) else 0)
