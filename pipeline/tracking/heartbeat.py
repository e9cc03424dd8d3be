"""Run heartbeats and the reaper: a run whose process died is told from a live one, and ended."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import mlflow

HEARTBEAT_TAG = "pipeline.heartbeat"
FAILURE_TAG = "pipeline.failure_reason"


def heartbeat_seconds() -> float:
    """How often a live run says so (PIPELINE_RUN_HEARTBEAT_SECONDS, default 30)."""
    return float(os.environ.get("PIPELINE_RUN_HEARTBEAT_SECONDS", "30"))


class Heartbeat:
    """Stamps the run with the time every few seconds, so that a run whose process was killed
    (SIGKILL, a lost machine) can be told from a live one on another machine, and reaped."""

    def __init__(self, run_id: str) -> None:
        self.run_id, self.stopped = run_id, threading.Event()
        self._beat()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="run-heartbeat")
        self.thread.start()

    def _beat(self) -> None:
        with contextlib.suppress(Exception):  # an unreachable store is reported by the stage
            mlflow.MlflowClient().set_tag(self.run_id, HEARTBEAT_TAG, f"{time.time():.0f}")

    def _loop(self) -> None:
        while not self.stopped.wait(heartbeat_seconds()):
            self._beat()

    def stop(self) -> None:
        self.stopped.set()


def reap(stale_after: float | None = None) -> list[str]:
    """Mark RUNNING runs whose heartbeat stopped KILLED; returns their ids.

    A run is stale after four missed heartbeats; runs without our heartbeat are left alone.
    """
    stale_after = stale_after if stale_after is not None else 4 * heartbeat_seconds()
    running = mlflow.search_runs(
        filter_string="attributes.status = 'RUNNING'", output_format="list",
        search_all_experiments=True,
    )  # fmt: skip
    reaped, now = [], time.time()
    for found in running:
        stamp = found.data.tags.get(HEARTBEAT_TAG)
        if stamp is None or now - float(stamp) < stale_after:
            continue
        client = mlflow.MlflowClient()
        client.set_tag(
            found.info.run_id, FAILURE_TAG, f"reaped: no heartbeat for {now - float(stamp):.0f} s"
        )
        client.set_terminated(found.info.run_id, "KILLED")
        reaped.append(found.info.run_id)
    return reaped
