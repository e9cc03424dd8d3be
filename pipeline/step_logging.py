"""The per-step metric callback: buffered, sent asynchronously, spooled when the store is lost."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import mlflow
from mlflow.entities import Metric

from pipeline.backend import keras
from pipeline.tracking import first_line, interrupt_pending


class StepMetricLogger(keras.callbacks.Callback):
    """Buffers per-step train metrics and sends them with async log_batch at each epoch end.

    Keras reports the running mean of the epoch at every batch; the logger turns it back into the
    batch's own loss and accuracy. It is async-safe, so Keras calls it from a worker thread and
    training never waits for it; records are ordered by batch index before they are sent.
    """

    async_safe = True

    def __init__(
        self,
        run_id: str,
        first_step: int,
        batch_size: int,
        train_size: int,
        spool: Path | None = None,
    ) -> None:
        super().__init__()
        self.run_id, self.spool = run_id, spool
        self.failure: str | None = None  # set when the store stops taking metrics
        self.unsent = 0
        self.next_step = first_step
        self.batch_size = batch_size
        self.train_size = train_size
        self.records: list[tuple[int, float, float, int]] = []
        self.pending: list = []
        self.epoch_started = time.perf_counter()
        self.non_finite_step: int | None = None

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.records = []
        self.epoch_started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        loss = float(logs["loss"])
        self.records.append((batch, loss, float(logs["accuracy"]), int(time.time() * 1000)))
        if not math.isfinite(loss):
            self.non_finite_step = self.next_step + batch
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if interrupt_pending():  # stopped mid-epoch: no epoch metrics for a partial epoch
            self._send(self._step_metrics())
            return
        seconds = time.perf_counter() - self.epoch_started
        trained = min(len(self.records) * self.batch_size, self.train_size)
        metrics = self._step_metrics()
        stamp, step = int(time.time() * 1000), self.next_step - 1
        epoch_values = {
            "val_loss": logs.get("val_loss"),
            "val_accuracy": logs.get("val_accuracy"),
            "epoch_seconds": seconds,
            "samples_per_second": trained / seconds if seconds > 0 else None,
        }
        for key, value in epoch_values.items():
            if value is not None and math.isfinite(value):
                metrics.append(Metric(key, float(value), stamp, step))
        self._send(metrics)

    def flush_partial(self) -> None:
        """Send what an interrupted epoch logged so far (called from the main thread)."""
        self._send(self._step_metrics())
        self.wait()

    def _step_metrics(self) -> list[Metric]:
        records, self.records = sorted(self.records), []
        metrics, loss_sum, correct = [], 0.0, 0
        for batch, mean_loss, mean_accuracy, stamp in records:
            size = min(self.batch_size, self.train_size - batch * self.batch_size)
            new_seen = batch * self.batch_size + size
            new_loss_sum, new_correct = mean_loss * new_seen, round(mean_accuracy * new_seen)
            step = self.next_step + batch
            metrics.append(Metric("train_loss", (new_loss_sum - loss_sum) / size, stamp, step))
            metrics.append(Metric("train_accuracy", (new_correct - correct) / size, stamp, step))
            loss_sum, correct = new_loss_sum, new_correct
        if records:
            self.next_step += records[-1][0] + 1
        return metrics

    def _send(self, metrics: list[Metric]) -> None:
        # Earlier batches had a whole epoch to arrive; a failure there means the store is gone.
        self._settle()
        if self.failure is not None:
            self._keep(metrics)
            return
        client = mlflow.MlflowClient()
        for start in range(0, len(metrics), 1000):
            chunk = metrics[start : start + 1000]
            operation = client.log_batch(self.run_id, metrics=chunk, synchronous=False)
            self.pending.append((operation, chunk))

    def _settle(self) -> None:
        pending, self.pending = self.pending, []
        for operation, chunk in pending:
            if self.failure is None:
                try:
                    operation.wait()
                    continue
                except Exception as error:  # the HTTP client already retried
                    self.failure = first_line(error)
                    if self.model is not None:
                        self.model.stop_training = True
            self._keep(chunk)

    def _keep(self, metrics: list[Metric]) -> None:
        """Metrics the store did not take go to the spool file, for `--resume` to send."""
        self.unsent += len(metrics)
        if self.spool is None:
            return
        self.spool.parent.mkdir(parents=True, exist_ok=True)
        with self.spool.open("a") as handle:
            for metric in metrics:
                handle.write(json.dumps([metric.key, metric.value, metric.timestamp, metric.step]))
                handle.write("\n")

    def wait(self) -> None:
        """Block until every batch sent so far is stored, or kept in the spool."""
        self._settle()


def replay_spool(run_id: str, spool: Path) -> int:
    """Send the metrics a lost store did not take; returns how many."""
    if not spool.is_file():
        return 0
    rows = [json.loads(line) for line in spool.read_text().splitlines() if line.strip()]
    metrics = [Metric(key, value, stamp, step) for key, value, stamp, step in rows]
    client = mlflow.MlflowClient()
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
    spool.unlink()
    return len(metrics)
