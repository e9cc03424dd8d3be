"""Per-step metrics: buffered, sent asynchronously at each epoch end, spooled if the store is lost.

Keras reports the running mean of the epoch at every batch; the sink turns it back into each
batch's own loss and accuracy. It knows nothing of Keras: training feeds it from a callback.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import mlflow
from mlflow.entities import Metric

from pipeline.errors import first_line
from pipeline.tracking import names

CHUNK = 1000  # metrics per log_batch call (MLflow's own limit)


class StepMetricSink:
    """Collects (batch, running mean loss, running mean accuracy) records of one epoch."""

    def __init__(
        self, run_id: str, first_step: int, batch_size: int, train_size: int, spool: Path | None
    ) -> None:
        self.run_id, self.spool = run_id, spool
        self.failure: str | None = None  # set when the store stops taking metrics
        self.unsent = 0
        self.next_step = first_step
        self.batch_size, self.train_size = batch_size, train_size
        self.records: list[tuple[int, float, float, int]] = []
        self.pending: list = []
        # The last complete epoch's values: what a model saved at that epoch is linked to.
        self.last_epoch: list[Metric] = []

    def start_epoch(self) -> None:
        self.records = []

    def record(self, batch: int, mean_loss: float, mean_accuracy: float) -> None:
        self.records.append((batch, mean_loss, mean_accuracy, int(time.time() * 1000)))

    def end_epoch(self, epoch_values: dict[str, float | None] | None) -> None:
        """Send the epoch's step metrics, with the epoch's own values at its last step
        (None: an interrupted, partial epoch, which gets no epoch values)."""
        metrics = self._step_metrics()
        stamp, step = int(time.time() * 1000), self.next_step - 1
        values = [
            Metric(key, float(value), stamp, step)
            for key, value in (epoch_values or {}).items()
            if value is not None and math.isfinite(value)
        ]
        if epoch_values is not None:
            self.last_epoch = values
        self._send(metrics + values)

    def discard_epoch(self) -> None:
        """Drop an interrupted epoch's step metrics: it will be trained again, at these steps."""
        self.records = []

    def batches_recorded(self) -> int:
        return len(self.records)

    def _step_metrics(self) -> list[Metric]:
        records, self.records = sorted(self.records), []
        metrics, loss_sum, correct = [], 0.0, 0
        for batch, mean_loss, mean_accuracy, stamp in records:
            size = min(self.batch_size, self.train_size - batch * self.batch_size)
            new_seen = batch * self.batch_size + size
            new_loss_sum, new_correct = mean_loss * new_seen, round(mean_accuracy * new_seen)
            step = self.next_step + batch
            metrics.append(Metric(names.BATCH_LOSS, (new_loss_sum - loss_sum) / size, stamp, step))
            accuracy = (new_correct - correct) / size
            metrics.append(Metric(names.BATCH_ACCURACY, accuracy, stamp, step))
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
        for start in range(0, len(metrics), CHUNK):
            chunk = metrics[start : start + CHUNK]
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
    for start in range(0, len(metrics), CHUNK):
        client.log_batch(run_id, metrics=metrics[start : start + CHUNK])
    spool.unlink()
    return len(metrics)
