"""The train stage: one model trained in one MLflow run (or an interrupted run resumed), its
outputs logged and summarised (fitting.py fits it)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from pipeline import checkpoints, data, fitting, locks, tracking, train_records
from pipeline.config import TrainConfig, architecture
from pipeline.errors import PipelineError
from pipeline.tracking import names


@dataclass(frozen=True)
class TrainResult:
    """What one train run produced."""

    run_id: str
    experiment_id: str
    config: TrainConfig
    val_accuracy: float
    val_loss: float
    seconds: float
    samples_per_second: float
    steps: int
    model_uri: str
    best_epoch: int | None = None  # with early stopping: the epoch the model is from


def _resume_state(checkpoint_dir: Path, run_id: str, digest: str, data_dir: Path) -> dict:
    """The checkpoint state of the run to resume, checked against the data at hand."""
    state = checkpoints.load_state(Path(checkpoint_dir) / run_id, run_id)
    if state["digest"] != digest:
        raise PipelineError(
            f"--resume {run_id}: the run trained on data {state['digest']}, but "
            f"{data_dir} holds {digest}"
        )
    return state


def _check_fitted(fitted: fitting.Fitted, config: TrainConfig, checkpoint_dir: Path, run_id: str):
    sink = fitted.metrics.sink
    if sink.failure is not None:
        raise PipelineError(
            f"lost the tracking store ({sink.failure}); {sink.unsent} step metrics kept in "
            f"{checkpoint_dir}/{run_id}/{fitting.SPOOL_FILE} with the checkpoint; when the "
            f"store is back: pipeline train --resume {run_id}"
        )
    if fitted.metrics.non_finite_step is not None:
        raise PipelineError(
            f"loss became NaN at step {fitted.metrics.non_finite_step}; "
            f"try a smaller --learning-rate (was {config.learning_rate})"
        )


def _claim(held: contextlib.ExitStack, checkpoint_dir: Path, run_id: str) -> None:
    """Hold a run's checkpoint folder while held lasts: a second process cannot resume a run
    that is training here; partial files a killed writer left are removed."""
    folder = Path(checkpoint_dir) / run_id
    held.enter_context(
        locks.exclusive(
            folder,
            wait=False,
            busy=f"--resume {run_id}: the run is training in another process on this machine",
        )
    )
    checkpoints.remove_leftovers(folder)


def train(
    config: TrainConfig | None,
    data_dir: Path,
    checkpoint_dir: Path,
    resume: str | None = None,
    progress: fitting.Progress | None = None,
    tags: dict[str, str] | None = None,
    label: str | None = None,
    log_checkpoints: bool = False,
    *,
    store: tracking.Store,
) -> TrainResult:
    """Train one model in one MLflow run (or continue an interrupted run with resume=RUN_ID).

    The run and its model are named for the config (label replaces the preset's name, say
    "tuned"); with log_checkpoints each epoch's model is logged too. The run goes to store."""
    dataset = data.load_dataset(data_dir)
    state = None
    with contextlib.ExitStack() as held:
        if resume:
            _claim(held, checkpoint_dir, resume)
            state = _resume_state(checkpoint_dir, resume, dataset.digest, data_dir)
            config = TrainConfig.from_params(state["config"])
        elif config is None:
            raise PipelineError("nothing to train: give a configuration or --resume RUN_ID")
        splits = data.split_train_validation(dataset, config.validation_fraction, config.seed)
        config = fitting.fit_epochs_to_steps(config, len(splits.y_train))
        store.open()
        checkpoints.tidy(checkpoint_dir)  # partial files of runs killed mid-write
        if resume:
            tracking.check_resumable(resume)
        params = config.params()
        tags = {
            names.ARCH: config.arch,
            names.DATA_DIGEST: dataset.digest,
            names.CONFIG_HASH: tracking.config_hash(params),
            **(tags or {}),
        }
        name = config.name(label)
        with tracking.run("train", run_name=name, tags=tags, run_id=resume) as run:
            if not resume:
                _claim(held, checkpoint_dir, run.run_id)
                run.log_params(params)
                train_records.log_inputs(splits, data_dir)
            else:  # metrics a lost tracking server did not take
                tracking.replay_spool(
                    run.run_id, Path(checkpoint_dir) / resume / fitting.SPOOL_FILE
                )
            name = run.name or name  # a resumed run keeps its name

            def per_epoch(model, sink, done: int) -> None:
                train_records.log_model(
                    run,
                    model,
                    config,
                    f"{name}-epoch{done}",
                    sink.next_step,
                    sink.last_epoch,
                    splits,
                )

            fitted = fitting.fit(
                config,
                splits,
                run.run_id,
                checkpoint_dir,
                state,
                progress,
                on_epoch_model=per_epoch if log_checkpoints else None,
                keep_best=config.early_stopping,
            )
            return _finish(run, config, fitted, splits, checkpoint_dir, state, name)


def _finish(
    run, config, fitted: fitting.Fitted, splits, checkpoint_dir, state, name
) -> TrainResult:
    """Check the fit, log the outputs (the best epoch's model, with early stopping) and
    summarise the run."""
    _check_fitted(fitted, config, checkpoint_dir, run.run_id)
    run.log_metrics({names.TRAIN_SECONDS: fitted.seconds})
    sink, best = fitted.metrics.sink, fitted.best
    step, epoch_metrics, stopped = sink.next_step, sink.last_epoch, ""
    if best is not None and best.epoch is not None:
        # A resumed run whose best epoch came before the interruption has no record of that
        # epoch's metrics in this process: its model is then linked to none, not the last's.
        step, epoch_metrics = best.step or step, best.metrics
        run.set_tags({names.BEST_EPOCH: str(best.epoch)})
        stopped = (
            f" Early stopping: the model is the one after epoch {best.epoch} of "
            f"{config.epochs}, where validation accuracy peaked."
        )
    model_uri = train_records.log_model(
        run, fitted.model, config, name, step, epoch_metrics, splits
    )
    run.set_tags({names.MODEL_URI: model_uri})
    train_records.log_curves(run)
    if best is not None and best.epoch is not None and best.epoch < config.epochs:
        # MLflow shows a run's metrics at their latest step: the kept model's, there too.
        kept = (names.VAL_ACCURACY, names.VAL_LOSS)
        settled = {metric.key: metric.value for metric in epoch_metrics if metric.key in kept}
        run.log_metrics(settled, step=sink.next_step - 1)
    final = tracking.latest_metrics(run.run_id)
    if best is not None and best.epoch is not None:
        final = {**final, **{metric.key: metric.value for metric in epoch_metrics}}
        if best.state.get("best_accuracy") is not None:
            final[names.VAL_ACCURACY] = best.state["best_accuracy"]
    steps = sink.next_step
    trained = (steps - (state["step"] if state else 0)) * config.batch_size
    schedule = "cosine-decayed" if config.learning_rate_schedule == "cosine" else "constant"
    run.describe(
        f"Trained {name}, the {architecture(config.arch).summary} with hidden size "
        f"{config.hidden_size}: {steps} steps of batch {config.batch_size} ({config.epochs} "
        f"epochs) with Adam at a {schedule} learning rate of {config.learning_rate:g}, on "
        f"{len(splits.y_train)} training images in {fitted.seconds:.0f} s of fitting.{stopped} "
        f"Validation accuracy {final.get(names.VAL_ACCURACY, float('nan')):.4f} (loss "
        f"{final.get(names.VAL_LOSS, float('nan')):.4f}) on {len(splits.y_val)} held-out images. "
        f"Model {model_uri}."
    )
    return TrainResult(
        run_id=run.run_id,
        experiment_id=run.experiment_id,
        config=config,
        val_accuracy=final.get(names.VAL_ACCURACY, float("nan")),
        val_loss=final.get(names.VAL_LOSS, float("nan")),
        seconds=fitted.seconds,
        samples_per_second=min(trained, len(splits.y_train) * config.epochs) / fitted.seconds,
        steps=steps,
        model_uri=model_uri,
        best_epoch=best.epoch if best is not None else None,
    )
