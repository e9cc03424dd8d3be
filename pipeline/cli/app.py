"""Typer app: each command parses options into a config, calls one function, prints a summary.

Options default to None ("not given"): the config dataclasses and the registry decide. Heavy
modules (TensorFlow, mlflow) are imported inside the commands, after the options are checked.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from pipeline import __version__, architectures
from pipeline import config as cfg
from pipeline.cli import console
from pipeline.cli.options import (
    ARCHES_HELP,
    PRESET_VALUE,
    TRAIN_ARCH_HELP,
    CheckpointDir,
    DataDir,
    Preset,
    Storage,
    SystemMetrics,
    checkpoint_dir_of,
    data_dir_of,
    default_of,
    given,
)
from pipeline.config import DataConfig, TrainConfig, TuneConfig
from pipeline.early_stopping import FIRST_EPOCH
from pipeline.errors import (
    PipelineError,
    StageInterrupted,
    environment_failure,
    redact,
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


@app.command()
def download(
    data_dir: Path = DataDir,
    source: str = typer.Option(
        None,
        "--source",
        help="A folder, file:// or http(s):// URL holding the four IDX files (default: the "
        "mirrors).",
    ),
    mirror: list[str] = typer.Option(
        None,
        "--mirror",
        help="Mirror base URL to try (repeatable; replaces the default list: "
        f"{', '.join(cfg.MIRRORS)}).",
    ),
    force: bool = typer.Option(
        False, "--force/--no-force", help="Fetch again even if verified data exists."
    ),
) -> None:
    """Fetch, verify and cache the MNIST files, and log a download run."""
    from pipeline import downloading, interrupts
    from pipeline.cli.console import byte_progress

    data_config = DataConfig(
        **given(data_dir=data_dir, source=source, mirrors=tuple(mirror) if mirror else None)
    )
    try:
        with interrupts.raising(), byte_progress() as progress:  # SIGTERM: staging is removed
            result, run_id = downloading.run_download(data_config, force=force, progress=progress)
    except interrupts.Interrupted as error:
        raise StageInterrupted(None, error.signal_number) from None
    console.print_download_summary(result, run_id)


@app.command()
def train(
    arch: str = typer.Option(None, "--arch", help=TRAIN_ARCH_HELP),
    preset: str = Preset,
    learning_rate: float = typer.Option(
        None, "--learning-rate", help=f"Adam learning rate {PRESET_VALUE}."
    ),
    hidden_size: int = typer.Option(
        None, "--hidden-size", help=f"Hidden units per layer {PRESET_VALUE}."
    ),
    epochs: int = typer.Option(
        None, "--epochs", help=f"Passes over the training split {PRESET_VALUE}."
    ),
    batch_size: int = typer.Option(None, "--batch-size", help=f"Images per step {PRESET_VALUE}."),
    max_steps: int = typer.Option(
        None,
        "--max-steps",
        help="Stop after this many steps (default: the seed preset's step budget, else none).",
    ),
    learning_rate_schedule: str = typer.Option(
        None,
        "--learning-rate-schedule",
        help=f"One of {', '.join(cfg.SCHEDULES)}; cosine decays to 0 over the run {PRESET_VALUE}.",
    ),
    seed: int = typer.Option(
        None,
        "--seed",
        help="Seed for split, initialisation, shuffling "
        f"(default: {default_of(TrainConfig, 'seed')}).",
    ),
    validation_fraction: float = typer.Option(
        None,
        "--validation-fraction",
        help="Share of the training set held out for validation "
        f"(default: {default_of(TrainConfig, 'validation_fraction')}).",
    ),
    early_stopping: bool = typer.Option(
        None,
        "--early-stopping/--no-early-stopping",
        help=f"Keep the model after the epoch (from {FIRST_EPOCH} on) of best validation "
        "accuracy, --epochs the ceiling, as a study's trials do (default: on at a constant "
        "learning rate without --max-steps).",
    ),
    resume: str = typer.Option(
        None,
        "--resume",
        help="Continue the interrupted run RUN_ID from its checkpoint (default: a new run).",
    ),
    data_dir: Path = DataDir,
    checkpoint_dir: Path = CheckpointDir,
    progress: bool = typer.Option(
        True,
        "--progress/--no-progress",
        help="Show progress: live bars on a terminal, a line per epoch otherwise.",
    ),
    log_checkpoints: bool = typer.Option(
        False,
        "--log-checkpoints/--no-log-checkpoints",
        help="Also log each epoch's model as an MLflow logged model.",
    ),
    system_metrics: bool = SystemMetrics,
) -> None:
    """Train one architecture and track params, per-step metrics and the model in MLflow."""
    options = given(
        arch=arch,
        preset=preset,
        learning_rate=learning_rate,
        hidden_size=hidden_size,
        epochs=epochs,
        batch_size=batch_size,
        max_steps=max_steps,
        seed=seed,
        learning_rate_schedule=learning_rate_schedule,
        validation_fraction=validation_fraction,
        early_stopping=early_stopping,
    )
    if resume and options:
        names = ", ".join("--" + name.replace("_", "-") for name in options)
        raise PipelineError(
            f"--resume {resume} continues the run with its own settings; drop {names}"
        )
    config: TrainConfig | None = None if resume else cfg.train_config(**options)
    from pipeline import training

    _system_metrics(system_metrics)
    result = training.train(
        config,
        data_dir_of(data_dir),
        checkpoint_dir_of(checkpoint_dir),
        resume,
        console.training_progress(progress),
        log_checkpoints=log_checkpoints,
    )
    console.print_train_summary(result)


@app.command()
def evaluate(
    run_id: str = typer.Option(
        None, "--run-id", help="A finished train run (give this or --model-uri; no default)."
    ),
    model_uri: str = typer.Option(
        None, "--model-uri", help=f"{cfg.MODEL_URI_FORMS} (no default)."
    ),
    register: bool = typer.Option(
        True, "--register/--no-register", help="Register the model; champion gate applies."
    ),
    data_dir: Path = DataDir,
    system_metrics: bool = SystemMetrics,
) -> None:
    """Score a model on the test set, log figures, and gate the champion alias."""
    if bool(run_id) == bool(model_uri):
        raise PipelineError("give exactly one of --run-id or --model-uri")
    from pipeline import evaluation

    _system_metrics(system_metrics)
    result = evaluation.evaluate_run(data_dir_of(data_dir), run_id, model_uri, register)
    console.print_eval_summary(result)


@app.command()
def tune(
    arch: str = typer.Option(None, "--arch", help=ARCHES_HELP),
    n_trials: int = typer.Option(
        None,
        "--n-trials",
        help=f"Trials this worker runs, per arch (default: {default_of(TuneConfig, 'n_trials')}).",
    ),
    timeout: float = typer.Option(
        None, "--timeout", help="Stop starting trials after SECONDS (default: no limit)."
    ),
    study_name: str = typer.Option(None, "--study-name", help="(default: mnist-ARCH)."),
    storage: str = Storage,
    sampler: str = typer.Option(
        None,
        "--sampler",
        help=f"One of {', '.join(cfg.SAMPLERS)} (default: {default_of(TuneConfig, 'sampler')}).",
    ),
    pruner: str = typer.Option(
        None,
        "--pruner",
        help=f"One of {', '.join(cfg.PRUNERS)} (default: {default_of(TuneConfig, 'pruner')}).",
    ),
    seed: int = typer.Option(
        None,
        "--seed",
        help="Sampler seed, split and initialisation "
        f"(default: {default_of(TuneConfig, 'seed')}).",
    ),
    learning_rate_range: tuple[float, float] = typer.Option(
        None,
        "--learning-rate-range",
        help=f"LOW HIGH, searched log-uniformly (default: {cfg.LEARNING_RATE_RANGE}).",
    ),
    hidden_size_range: tuple[int, int] = typer.Option(
        None,
        "--hidden-size-range",
        help=f"LOW HIGH hidden units, log-uniform integers (default: {cfg.HIDDEN_SIZE_RANGE}).",
    ),
    epochs_range: tuple[int, int] = typer.Option(
        None, "--epochs-range", help="LOW HIGH epochs (default: 2 to the default preset's)."
    ),
    search: str = typer.Option(
        None,
        "--search",
        help="standard (learning rate, hidden size, epochs) or wide (also "
        f"batch size {'/'.join(map(str, cfg.BATCH_SIZES))} and learning-rate schedule) "
        f"(default: {default_of(TuneConfig, 'search')}).",
    ),
    start_from: str = typer.Option(
        None,
        "--start-from",
        help=f"Preset ({', '.join(architectures.preset_names())}) the trials build on; "
        f"trial 0 when the ranges hold it (default: {default_of(TuneConfig, 'start_from')}).",
    ),
    validation_fraction: float = typer.Option(
        None,
        "--validation-fraction",
        help="Share of the training set held out for validation "
        f"(default: {default_of(TuneConfig, 'validation_fraction')}).",
    ),
    folds: int = typer.Option(
        None,
        "--folds",
        help="Score each trial by K-fold cross-validation, pruning on its first fold; 1: one "
        f"validation split (default: {default_of(TuneConfig, 'folds')}).",
    ),
    retrain_best: bool = typer.Option(
        False,
        "--retrain-best/--no-retrain-best",
        help="Train, evaluate and register the best configuration, if it beats trial 0 at 5 %.",
    ),
    heartbeat: int = typer.Option(
        None,
        "--heartbeat",
        help="Seconds between trial heartbeats; 3 missed = worker dead "
        f"(default: {default_of(TuneConfig, 'heartbeat_seconds')}).",
    ),
    trials_per_process: int = typer.Option(
        None,
        "--trials-per-process",
        help="Trials one process runs before a fresh one takes "
        f"over (Keras keeps ~10 MB of every fit; default: {cfg.TRIALS_PER_PROCESS}).",
    ),
    data_dir: Path = DataDir,
    checkpoint_dir: Path = CheckpointDir,
    system_metrics: bool = SystemMetrics,
) -> None:
    """Search learning rate, hidden size and epochs with Optuna; one MLflow run per trial."""
    config = TuneConfig(
        **given(
            arch=arch,
            n_trials=n_trials,
            timeout_seconds=timeout,
            study_name=study_name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            seed=seed,
            learning_rate_range=learning_rate_range,
            hidden_size_range=hidden_size_range,
            epochs_range=epochs_range,
            search=search,
            start_from=start_from,
            validation_fraction=validation_fraction,
            folds=folds,
            retrain_best=retrain_best,
            heartbeat_seconds=heartbeat,
            trials_per_process=trials_per_process,
        )
    )
    _system_metrics(system_metrics)
    for each in config.arches():
        console.print_tune_start(config, each)  # before the seconds of importing Optuna, MLflow
        from pipeline.tuning import study

        result = study.tune_arch(
            config,
            each,
            data_dir_of(data_dir),
            checkpoint_dir_of(checkpoint_dir),
            console.print_trial,
            on_status=console.print_status,
        )
        console.print_study_summary(result)


def _system_metrics(enabled: bool | None) -> None:
    """--system-metrics: MLflow samples CPU and memory on each run this process starts."""
    if enabled is not None:
        from pipeline import tracking

        tracking.record_system_metrics(enabled)


@app.command("main")
def main_job(
    preset: str = Preset,
    arch: str = typer.Option(None, "--arch", help=ARCHES_HELP),
    tune: bool = typer.Option(False, "--tune/--no-tune", help="Tune each arch first."),
    n_trials: int = typer.Option(
        None,
        "--n-trials",
        help=f"Trials per arch when tuning (default: {default_of(cfg.MainConfig, 'n_trials')}).",
    ),
    storage: str = Storage,
    source: str = typer.Option(
        None, "--source", help="Local MNIST folder or URL (offline; default: the mirrors)."
    ),
    data_dir: Path = DataDir,
    checkpoint_dir: Path = CheckpointDir,
    report_dir: Path = typer.Option(
        None, "--report-dir", help=f"Where the report goes (default: {cfg.DEFAULT_REPORT_DIR})."
    ),
    system_metrics: bool = SystemMetrics,
) -> None:
    """Download, (tune,) train and evaluate each arch, then report: one parent run."""
    config = cfg.MainConfig(
        **given(
            data=DataConfig(**given(data_dir=data_dir, source=source)),
            preset=preset,
            arch=arch,
            tune=tune,
            n_trials=n_trials,
            storage=storage,
            checkpoint_dir=checkpoint_dir,
            report_dir=report_dir,
        )
    )
    from pipeline import workflow

    _system_metrics(system_metrics)
    result = workflow.run_main(
        config, say=typer.echo, progress=lambda label: console.training_progress(True, label)
    )
    reused = sum(1 for _, _, was_reused in result.steps if was_reused)
    typer.echo(f"main run {result.run_id}: {len(result.steps)} steps, {reused} reused")


@app.command()
def report(
    experiment: str = typer.Option(
        None,
        "--experiment",
        help=f"(default: MLFLOW_EXPERIMENT_NAME, else {cfg.DEFAULT_EXPERIMENT}).",
    ),
    run_id: list[str] = typer.Option(
        None, "--run-id", help="Only these runs (repeatable; default: the newest of each kind)."
    ),
    output_dir: Path = typer.Option(
        None, "--output-dir", help=f"Where to write (default: {cfg.DEFAULT_REPORT_DIR})."
    ),
) -> None:
    """Compare architectures, presets and tuned runs with the notebooks: reports/report.md."""
    from pipeline import reporting

    folder = output_dir or cfg.DEFAULT_REPORT_DIR
    written = reporting.write_report(folder, experiment, run_id or None)
    typer.echo(reporting.markdown_table(written.table.drop(columns=["run_id"])))
    typer.echo(f"\nWrote {folder / 'report.md'} and figures; report run {written.run_id}")


@app.command()
def ui(
    port: int = typer.Option(cfg.DEFAULT_UI_PORT, "--port", help="Port to listen on."),
    host: str = typer.Option(
        cfg.DEFAULT_UI_HOST, "--host", help="Interface; loopback unless you mean it."
    ),
    storage: str = Storage,
) -> None:
    """Start the MLflow UI on the project's store (and say how to open optuna-dashboard)."""
    from pipeline import tracking
    from pipeline.cli import ui_server

    tracking.setup(reap=False)  # a store that cannot be opened is one line, at once
    experiment = tracking.current_experiment_id()
    storage = storage or cfg.DEFAULT_OPTUNA_STORAGE
    raise typer.Exit(ui_server.serve(host, port, storage, experiment, typer.echo))


@app.command()
def reap(
    stale_after: float = typer.Option(
        None,
        "--stale-after",
        help="Seconds without a heartbeat (default: 4 of the run's own intervals).",
    ),
    include_unbeating: bool = typer.Option(
        False,
        "--include-unbeating/--no-include-unbeating",
        help="Also reap RUNNING runs that never sent a heartbeat (needs --older-than).",
    ),
    older_than: str = typer.Option(
        None,
        "--older-than",
        help="With --include-unbeating: started more than DURATION ago (90s, 30m, 2h, 1d; "
        "no default).",
    ),
    checkpoint_dir: Path = CheckpointDir,
) -> None:
    """Mark runs whose process died (no heartbeat) KILLED; live runs elsewhere are left alone."""
    config = cfg.ReapConfig(stale_after, include_unbeating, older_than)
    from pipeline import checkpoints, tracking

    tracking.setup(reap=False)
    reaped = tracking.reap(config.stale_after, config.unbeating_age())
    console.print_reap_summary(reaped, checkpoints.tidy(checkpoint_dir_of(checkpoint_dir)))


@app.command("init-stores")
def init_stores(storage: str = Storage) -> None:
    """Create the MLflow and Optuna schemas once, before parallel tune workers start."""
    storage = storage or cfg.DEFAULT_OPTUNA_STORAGE
    from pipeline import tracking
    from pipeline.tuning import storage as study_storage

    uri = tracking.setup()
    study_storage.init_storage(storage)
    typer.echo(f"Ready: MLflow store {redact(uri)}, Optuna storage {redact(storage)}")


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
