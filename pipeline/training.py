"""train(): seed, compile, fit with validation data, checkpoints and tracking callbacks.

TensorFlow is imported when a model is first built, after every option and precondition
(data, checkpoint, tracking store) has been checked.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pipeline import checkpoints, data, interrupts, locks, records, tracking
from pipeline.config import TrainConfig, architecture
from pipeline.console import epoch_progress
from pipeline.errors import PipelineError

SPOOL_FILE = "unsent_metrics.jsonl"


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


def steps_per_epoch(config: TrainConfig, train_size: int) -> int:
    return math.ceil(train_size / config.batch_size)


def total_steps(config: TrainConfig, train_size: int) -> int:
    """Optimizer steps the whole run takes (what a learning-rate schedule spans)."""
    return config.max_steps or steps_per_epoch(config, train_size) * config.epochs


def new_model(config: TrainConfig, train_size: int):
    """The config's architecture, compiled, with fresh weights (a keras.Model)."""
    from pipeline import models

    model = models.build_model(config)
    return models.compile_model(model, config, total_steps(config, train_size))


def fit_epochs_to_steps(config: TrainConfig, train_size: int) -> TrainConfig:
    """With a step budget, the epoch count is whatever the budget needs on this data."""
    if config.max_steps is None:
        return config
    return replace(
        config, epochs=math.ceil(config.max_steps / steps_per_epoch(config, train_size))
    )


@dataclass
class Fitted:
    """What fit() leaves behind: the model, its step metrics and the seconds fit took."""

    model: object  # keras.Model
    metrics: object  # callbacks.StepMetrics
    seconds: float


def fit(
    config: TrainConfig,
    splits: data.Splits,
    run_id: str,
    checkpoint_dir: Path | None = None,
    state: dict | None = None,
    show_progress: bool = False,
    on_epoch: Callable[[int, dict], None] | None = None,
    on_epoch_model: Callable[[object, tracking.StepMetricSink, int], None] | None = None,
) -> Fitted:
    """Fit (or continue, given a checkpoint state) inside the active run.

    After each complete epoch, on_epoch(epochs_done, logs) runs (an Optuna report, say), and
    on_epoch_model(model, sink, epochs_done) (logging the epoch's model, say).
    SIGINT / SIGTERM stop training after the current batch, save a checkpoint and raise
    `interrupts.Interrupted`.
    """
    from pipeline.backend import keras
    from pipeline.callbacks import EpochCheckpoint, EpochHook, StepLimit, StepMetrics

    keras.utils.set_random_seed(config.seed + (state["epoch"] if state else 0))
    train_size = len(splits.y_train)
    model = new_model(config, train_size)
    folder = Path(checkpoint_dir) / run_id if checkpoint_dir is not None else None
    if state:
        checkpoints.restore_into(model, folder)
    else:
        state = {"run_id": run_id, "config": config.params(), "digest": splits.digest}
        state.update(epoch=0, step=0)
    stop = interrupts.GracefulStop(lambda: setattr(model, "stop_training", True))
    spool = folder / SPOOL_FILE if folder is not None else None
    sink = tracking.StepMetricSink(run_id, state["step"], config.batch_size, train_size, spool)
    metrics = StepMetrics(sink, stop)
    callbacks = [metrics]
    checkpoint = None
    if folder is not None:
        checkpoint = EpochCheckpoint(checkpoints.CheckpointWriter(folder), state, metrics)
        callbacks.append(checkpoint)
    if config.max_steps is not None:  # a synchronous per-batch callback costs time: only if needed
        callbacks.append(StepLimit(state["step"], config.max_steps))
    if on_epoch is not None:
        callbacks.append(EpochHook(on_epoch, stop))
    if on_epoch_model is not None:
        callbacks.append(EpochHook(lambda done, _: on_epoch_model(model, sink, done), stop))
    started = time.perf_counter()
    with epoch_progress(show_progress, steps_per_epoch(config, train_size), config.epochs) as bar:
        try:
            with stop.active():
                model.fit(
                    splits.x_train.astype(np.float32), splits.y_train,
                    batch_size=config.batch_size, epochs=config.epochs,
                    initial_epoch=state["epoch"],
                    validation_data=(splits.x_val.astype(np.float32), splits.y_val),
                    shuffle=True, verbose=0,
                    callbacks=callbacks + bar,
                )  # fmt: skip
            stop.raise_if_pending()  # Keras stopped after the batch the signal hit
        except KeyboardInterrupt:
            time.sleep(0.05)  # let Keras' callback workers record the batch in flight
            sink.end_epoch(None)
            sink.wait()
            if checkpoint is not None:
                checkpoint.save()
                checkpoint.writer.wait()
            raise
        finally:
            sink.wait()
    return Fitted(model, metrics, time.perf_counter() - started)


def clear_state() -> None:
    """Free the models and graphs of earlier fits (between trials of a long study)."""
    from pipeline.backend import keras

    keras.backend.clear_session()


def _resume_state(checkpoint_dir: Path, run_id: str, digest: str, data_dir: Path) -> dict:
    """The checkpoint state of the run to resume, checked against the data at hand."""
    state = checkpoints.load_state(Path(checkpoint_dir) / run_id, run_id)
    if state["digest"] != digest:
        raise PipelineError(
            f"--resume {run_id}: the run trained on data {state['digest']}, but "
            f"{data_dir} holds {digest}"
        )
    return state


def _check_fitted(fitted: Fitted, config: TrainConfig, checkpoint_dir: Path, run_id: str):
    sink = fitted.metrics.sink
    if sink.failure is not None:
        raise PipelineError(
            f"lost the tracking store ({sink.failure}); {sink.unsent} step metrics kept "
            f"in {checkpoint_dir}/{run_id}/{SPOOL_FILE} with the checkpoint; when the store "
            f"is back: pipeline train --resume {run_id}"
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
    held.enter_context(locks.exclusive(
        folder, wait=False,
        busy=f"--resume {run_id}: the run is training in another process on this machine",
    ))  # fmt: skip
    checkpoints.remove_leftovers(folder)


def train(
    config: TrainConfig | None,
    data_dir: Path,
    checkpoint_dir: Path,
    resume: str | None = None,
    show_progress: bool = True,
    tags: dict[str, str] | None = None,
    label: str | None = None,
    log_checkpoints: bool = False,
) -> TrainResult:
    """Train one model in one MLflow run (or continue an interrupted run with resume=RUN_ID).

    The run and its model are named for the config (label replaces the preset's name, say
    "tuned"); with log_checkpoints each epoch's model is logged too."""
    dataset = data.load_dataset(data_dir)
    state = None
    with contextlib.ExitStack() as held:
        if resume:
            _claim(held, checkpoint_dir, resume)
            state = _resume_state(checkpoint_dir, resume, dataset.digest, data_dir)
            config = TrainConfig.from_params(state["config"])
        splits = data.split_train_validation(dataset, config.validation_fraction, config.seed)
        config = fit_epochs_to_steps(config, len(splits.y_train))
        tracking.setup()
        if resume:
            tracking.check_resumable(resume)
        params = config.params()
        tags = {
            tracking.ARCH_TAG: config.arch,
            tracking.DIGEST_TAG: dataset.digest,
            tracking.CONFIG_HASH_TAG: tracking.config_hash(params),
            **(tags or {}),
        }
        name = config.name(label)
        with tracking.run("train", run_name=name, tags=tags, run_id=resume) as run:
            if not resume:
                _claim(held, checkpoint_dir, run.run_id)
                run.log_params(params)
                records.log_inputs(splits, data_dir)
            else:  # metrics a lost tracking server did not take
                tracking.replay_spool(run.run_id, Path(checkpoint_dir) / resume / SPOOL_FILE)
            name = run.name or name  # a resumed run keeps its name

            def per_epoch(model, sink, done: int) -> None:
                records.log_model(run, model, config, f"{name}-epoch{done}", sink, splits)

            fitted = fit(
                config, splits, run.run_id, checkpoint_dir, state, show_progress,
                on_epoch_model=per_epoch if log_checkpoints else None,
            )  # fmt: skip
            return _finish(run, config, fitted, splits, checkpoint_dir, state, name)


def _finish(run, config, fitted: Fitted, splits, checkpoint_dir, state, name) -> TrainResult:
    """Check the fit, log the outputs and summarise the run."""
    _check_fitted(fitted, config, checkpoint_dir, run.run_id)
    run.log_metrics({"train_seconds": fitted.seconds})
    model_uri = records.log_model(run, fitted.model, config, name, fitted.metrics.sink, splits)
    run.set_tags({tracking.MODEL_URI_TAG: model_uri})
    records.log_curves(run)
    final = tracking.latest_metrics(run.run_id)
    steps = fitted.metrics.sink.next_step
    trained = (steps - (state["step"] if state else 0)) * config.batch_size
    schedule = "cosine-decayed" if config.learning_rate_schedule == "cosine" else "constant"
    run.describe(
        f"Trained {name}, the {architecture(config.arch).summary} with hidden size "
        f"{config.hidden_size}: {steps} steps of batch {config.batch_size} ({config.epochs} "
        f"epochs) with Adam at a {schedule} learning rate of {config.learning_rate:g}, on "
        f"{len(splits.y_train)} training images in {fitted.seconds:.0f} s of fitting. "
        f"Validation accuracy {final.get('val_accuracy', float('nan')):.4f} (loss "
        f"{final.get('val_loss', float('nan')):.4f}) on {len(splits.y_val)} held-out images. "
        f"Model {model_uri}."
    )
    return TrainResult(
        run_id=run.run_id,
        experiment_id=run.experiment_id,
        config=config,
        val_accuracy=final.get("val_accuracy", float("nan")),
        val_loss=final.get("val_loss", float("nan")),
        seconds=fitted.seconds,
        samples_per_second=min(trained, len(splits.y_train) * config.epochs) / fitted.seconds,
        steps=steps,
        model_uri=model_uri,
    )
