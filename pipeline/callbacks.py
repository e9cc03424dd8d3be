"""The Keras callbacks a fit uses: step metrics, step limit, checkpoints, epoch hooks, progress."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from pipeline import checkpoints, interrupts, tracking
from pipeline.keras_runtime import keras
from pipeline.tracking import names


class StepMetrics(keras.callbacks.Callback):
    """Feeds every batch's loss and accuracy to the tracking sink; stops on a NaN loss.

    Async-safe, so Keras calls it from a worker thread and training never waits for it.
    """

    async_safe = True

    def __init__(self, sink: tracking.StepMetricSink, stop: interrupts.GracefulStop) -> None:
        super().__init__()
        self.sink, self.stop = sink, stop
        self.non_finite_step: int | None = None
        self.epoch_started = time.perf_counter()

    def on_train_begin(self, logs=None) -> None:
        # fit() clears stop_training as it starts: a signal that came just before still stops.
        if self.stop.pending is not None:
            self.model.stop_training = True

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.sink.start_epoch()
        self.epoch_started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        loss = float(logs["loss"])
        self.sink.record(batch, loss, float(logs["accuracy"]))
        if not math.isfinite(loss):
            self.non_finite_step = self.sink.next_step + batch
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        # The first of a fit's epoch-end callbacks: it decides for them all (see _recording).
        if self.stop.end_epoch():  # stopped mid-epoch: --resume trains that epoch again
            self.sink.discard_epoch()
            return
        seconds = time.perf_counter() - self.epoch_started
        trained = min(self.sink.batches_recorded() * self.sink.batch_size, self.sink.train_size)
        self.sink.end_epoch(
            {
                names.TRAIN_LOSS: logs.get("loss"),  # Keras' mean over the epoch's batches
                names.TRAIN_ACCURACY: logs.get("accuracy"),
                names.VAL_LOSS: logs.get(names.VAL_LOSS),
                names.VAL_ACCURACY: logs.get(names.VAL_ACCURACY),
                names.EPOCH_SECONDS: seconds,
                names.SAMPLES_PER_SECOND: trained / seconds if seconds > 0 else None,
            }
        )
        if self.sink.failure is not None:
            self.model.stop_training = True


class StepLimit(keras.callbacks.Callback):
    """Stops after max_steps batches in all (checked synchronously before each batch)."""

    def __init__(self, first_step: int, max_steps: int) -> None:
        super().__init__()
        self.step, self.max_steps = first_step, max_steps

    def on_train_batch_begin(self, batch: int, logs=None) -> None:
        self.step += 1
        if self.step >= self.max_steps:
            self.model.stop_training = True  # this batch is the last one


class EpochCheckpoint(keras.callbacks.Callback):
    """A checkpoint after every complete epoch (never of a diverged model)."""

    def __init__(self, writer: checkpoints.CheckpointWriter, state: dict, metrics: StepMetrics):
        super().__init__()
        self.writer, self.state, self.metrics = writer, state, metrics

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if self.metrics.stop.cut_short:  # a partial epoch: --resume trains it again
            return
        self.state["epoch"] = epoch + 1
        if self.metrics.non_finite_step is None:
            self.save()

    def on_train_end(self, logs=None) -> None:
        self.writer.wait()

    def save(self) -> None:
        self.state["step"] = self.metrics.sink.next_step
        self.writer.save(self.model, self.state)


class EpochHook(keras.callbacks.Callback):
    """Calls hook(epochs_done, logs) after every complete epoch (not after a partial one)."""

    def __init__(self, hook: Callable[[int, dict], None], stop: interrupts.GracefulStop) -> None:
        super().__init__()
        self.hook, self.stop = hook, stop

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if not self.stop.cut_short:  # a partial epoch says nothing
            self.hook(epoch + 1, logs or {})


class ReportProgress(keras.callbacks.Callback):
    """Tells a fitting.Progress (the CLI's bars or lines) of each batch and epoch.

    Async-safe: Keras calls it from a worker thread, so showing progress never slows a step."""

    async_safe = True

    def __init__(self, progress, epochs: int, steps: int, first_epoch: int) -> None:
        super().__init__()
        self.progress = progress
        self.epochs, self.steps, self.first_epoch = epochs, steps, first_epoch
        self.epoch = first_epoch + 1

    def on_train_begin(self, logs=None) -> None:
        self.progress.start(self.epochs, self.steps, self.first_epoch)

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        self.progress.batch(self.epoch, batch + 1, _floats(logs))

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.progress.epoch_end(epoch + 1, _floats(logs))


def _floats(logs: dict | None) -> dict[str, float]:
    return {key: float(value) for key, value in (logs or {}).items()}
