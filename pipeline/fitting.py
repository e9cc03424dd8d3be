"""Fitting a model inside a run: seeding, Keras callbacks for step metrics, checkpoints, a step
limit and progress, and a clean stop on SIGINT / SIGTERM. Used by the train stage and by trials.

TensorFlow is imported when a model is first built, after every option and precondition
(data, checkpoint, tracking store) has been checked.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from pipeline import checkpoints, data, early_stopping, interrupts, tracking
from pipeline.config import TrainConfig
from pipeline.errors import PipelineError
from pipeline.tracking import names

if TYPE_CHECKING:  # callbacks imports Keras: at run time only once a model is fitted
    from pipeline.callbacks import EpochCheckpoint, StepMetrics

SPOOL_FILE = "unsent_metrics.jsonl"  # step metrics a lost store did not take, for --resume


class Progress(Protocol):
    """Whoever shows a fit's progress (the CLI's bars or lines); called from Keras' callback
    thread, so it must not block. epoch is 1-based; logs hold loss and accuracy (and, at an
    epoch's end, val_loss and val_accuracy)."""

    def start(self, epochs: int, steps: int, first_epoch: int) -> None: ...

    def batch(self, epoch: int, batch: int, logs: dict[str, float]) -> None: ...

    def epoch_end(self, epoch: int, logs: dict[str, float]) -> None: ...

    def end(self) -> None: ...


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
    """What fit() leaves behind: the model, its step metrics and the seconds fit took; with
    keep_best, the best epoch's record (the model holds its weights)."""

    model: Any  # keras.Model
    metrics: StepMetrics
    seconds: float
    best: early_stopping.BestEpoch | None = None


def fit(
    config: TrainConfig,
    splits: data.Splits,
    run_id: str,
    checkpoint_dir: Path | None = None,
    state: dict | None = None,
    progress: Progress | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    on_epoch_model: Callable[[object, tracking.StepMetricSink, int], None] | None = None,
    first_step: int = 0,
    keep_best: bool = False,
) -> Fitted:
    """Fit (or continue, given a checkpoint state) inside the active run.

    After each complete epoch, on_epoch(epochs_done, logs) runs (an Optuna report, say), and
    on_epoch_model(model, sink, epochs_done) (logging the epoch's model, say). A fresh fit's
    step metrics start at first_step (a trial's second fold follows its first on the charts).
    SIGINT / SIGTERM stop training after the current batch and raise `interrupts.Interrupted`,
    the last complete epoch's checkpoint kept. With keep_best, the model ends with the weights
    of the epoch its validation curve chose (pipeline.early_stopping).
    """
    from pipeline.callbacks import EpochHook, ReportProgress

    folder = Path(checkpoint_dir) / run_id if checkpoint_dir is not None else None
    model, state = _start(config, splits, run_id, folder, state)
    train_size = len(splits.y_train)
    stop = interrupts.GracefulStop(lambda: setattr(model, "stop_training", True))
    spool = folder / SPOOL_FILE if folder is not None else None
    first_step = state["step"] or first_step
    sink = tracking.StepMetricSink(run_id, first_step, config.batch_size, train_size, spool)
    metrics, checkpoint, callbacks = _recording(config, sink, stop, state, folder)
    best = early_stopping.BestEpoch(state, folder) if keep_best else None
    if best is not None:  # before the checkpoint, so that its state holds this epoch's choice
        callbacks.insert(
            1,
            EpochHook(
                lambda done, logs: best.see(
                    model, done, float(logs[names.VAL_ACCURACY]), sink.next_step, sink.last_epoch
                ),
                stop,
            ),
        )
    if on_epoch is not None:
        callbacks.append(EpochHook(on_epoch, stop))
    if on_epoch_model is not None:
        callbacks.append(EpochHook(lambda done, _: on_epoch_model(model, sink, done), stop))
    if progress is not None:
        steps = steps_per_epoch(config, train_size)
        callbacks.append(ReportProgress(progress, config.epochs, steps, state["epoch"]))
    started = time.perf_counter()
    try:
        with stop.active():
            model.fit(
                splits.x_train.astype(np.float32),
                splits.y_train,
                batch_size=config.batch_size,
                epochs=config.epochs,
                initial_epoch=state["epoch"],
                validation_data=(splits.x_val.astype(np.float32), splits.y_val),
                shuffle=True,
                verbose=0,
                callbacks=callbacks,
            )
        stop.raise_if_pending()  # Keras stopped after the batch the signal hit
    except KeyboardInterrupt:
        # The interrupted epoch is dropped, its step metrics unsent: --resume trains it again,
        # so every later record sits at the step an uninterrupted run would give it.
        time.sleep(0.05)  # let Keras' callback workers record the batch in flight
        sink.discard_epoch()
        sink.wait()
        if checkpoint is not None:  # the last complete epoch's, written in the background
            checkpoint.writer.wait()
        raise
    finally:
        sink.wait()
        if progress is not None:
            progress.end()
    seconds = time.perf_counter() - started
    if best is not None:
        best.restore(model)
    return Fitted(model, metrics, seconds, best)


def _start(
    config: TrainConfig, splits: data.Splits, run_id: str, folder: Path | None, state: dict | None
) -> tuple[Any, dict]:
    """A seeded, compiled model (restored from folder's checkpoint, given a state) and the
    state its checkpoints record."""
    from pipeline.keras_runtime import keras

    keras.utils.set_random_seed(config.seed + (state["epoch"] if state else 0))
    model = new_model(config, len(splits.y_train))
    if state:
        if folder is None:
            raise PipelineError(f"resuming run {run_id} needs its checkpoint folder")
        checkpoints.restore_into(model, folder)
        return model, state
    state = {"run_id": run_id, "config": config.params(), "digest": splits.digest}
    return model, {**state, "epoch": 0, "step": 0}


def _recording(
    config: TrainConfig,
    sink: tracking.StepMetricSink,
    stop: interrupts.GracefulStop,
    state: dict,
    folder: Path | None,
) -> tuple[StepMetrics, EpochCheckpoint | None, list]:
    """The callbacks that record a fit: step metrics, checkpoints (with a folder) and the step
    limit where the config sets one; (step metrics, checkpoints, all of them). The step
    metrics come first: at an epoch's end they decide whether it was cut short."""
    from pipeline.callbacks import EpochCheckpoint, StepLimit, StepMetrics

    metrics = StepMetrics(sink, stop)
    checkpoint = None
    if folder is not None:
        checkpoint = EpochCheckpoint(checkpoints.CheckpointWriter(folder), state, metrics)
    callbacks = [metrics, *([checkpoint] if checkpoint else [])]
    if config.max_steps is not None:  # a synchronous per-batch callback costs time: only if needed
        callbacks.append(StepLimit(state["step"], config.max_steps))
    return metrics, checkpoint, callbacks


def clear_state() -> None:
    """Free the models and graphs of earlier fits (between trials of a long study)."""
    from pipeline.keras_runtime import keras

    keras.backend.clear_session()
