"""Run heartbeats and the reaper: a run whose process died is told from a live one, and ended.

Each run records the interval it beats at, and is judged stale by its own interval, so a stage
started with a short interval never reaps a live run that beats slowly.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass, field

import mlflow

from pipeline import config as cfg
from pipeline.tracking import names


def heartbeat_seconds() -> float:
    """How often a live run says so (PIPELINE_RUN_HEARTBEAT_SECONDS, default 30)."""
    return float(os.environ.get("PIPELINE_RUN_HEARTBEAT_SECONDS", "30"))


class Heartbeat:
    """Stamps the run with the time every few seconds, so that a run whose process was killed
    (SIGKILL, a lost machine) can be told from a live one on another machine, and reaped."""

    def __init__(self, run_id: str) -> None:
        self.run_id, self.stopped = run_id, threading.Event()
        self.interval = heartbeat_seconds()
        self._beat(
            {names.HEARTBEAT_INTERVAL: f"{self.interval:g}", names.HOST: socket.gethostname()}
        )
        self.thread = threading.Thread(target=self._loop, daemon=True, name="run-heartbeat")
        self.thread.start()

    def _beat(self, extra: dict[str, str] | None = None) -> None:
        from mlflow.entities import RunTag

        tags = {names.HEARTBEAT: f"{time.time():.0f}", **(extra or {})}
        with contextlib.suppress(Exception):  # an unreachable store is reported by the stage
            batch = [RunTag(key, value) for key, value in tags.items()]
            mlflow.MlflowClient().log_batch(self.run_id, tags=batch)

    def _loop(self) -> None:
        while not self.stopped.wait(self.interval):
            self._beat()

    def stop(self) -> None:
        self.stopped.set()


@dataclass
class Reaped:
    """What a reap did: runs marked KILLED, and RUNNING runs it could not judge."""

    killed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (run id, why)
    # RUNNING runs that never beat, left alone unless asked: (run id, seconds since start)
    unbeating: list[tuple[str, float]] = field(default_factory=list)


def seconds_silent(run) -> float | None:
    """Seconds since a run's last heartbeat (None: it never beat, or the tag is garbled)."""
    try:
        return time.time() - float(run.data.tags[names.HEARTBEAT])
    except (KeyError, ValueError):
        return None


def beats_elsewhere(run) -> bool:
    """Whether the run's process runs on another machine (its liveness is only its heartbeat)."""
    return run.data.tags.get(names.HOST, "") != socket.gethostname()


def lease(run) -> float:
    """How long a run may stay silent before it counts as dead: four of its own intervals."""
    try:
        return cfg.MISSED_BEATS * float(
            run.data.tags.get(names.HEARTBEAT_INTERVAL, heartbeat_seconds())
        )
    except ValueError:
        return cfg.MISSED_BEATS * heartbeat_seconds()


def _silence(run, now: float, stale_after: float | None, older_than: float | None):
    """(seconds silent, allowed) for a RUNNING run; None when it is alive or not ours to judge.

    Raises ValueError for tags that are not numbers."""
    stamp = run.data.tags.get(names.HEARTBEAT)
    if stamp is None:  # never beat: only reaped on request, by age
        if older_than is None:
            return None
        return now - run.info.start_time / 1000, older_than
    interval = float(run.data.tags.get(names.HEARTBEAT_INTERVAL, heartbeat_seconds()))
    return now - float(stamp), stale_after or cfg.MISSED_BEATS * interval


def _fail_pending_models(client: mlflow.MlflowClient, run) -> None:
    """A dead run's logged models whose upload never finished end FAILED, not PENDING for good
    (evaluate refuses a model that is not READY)."""
    with contextlib.suppress(Exception):  # the reap itself matters more
        found = client.search_logged_models(
            [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
        )
        for model in found:
            if str(model.status) == "PENDING":
                client.finalize_logged_model(model.model_id, "FAILED")


def reap(stale_after: float | None = None, unbeating_older_than: float | None = None) -> Reaped:
    """Mark RUNNING runs whose heartbeat stopped KILLED.

    A run is stale after four of its own heartbeat intervals without a beat (or stale_after
    seconds, when given). Runs that never beat are left alone unless unbeating_older_than is
    given: then those started longer ago than that are reaped too. Malformed tags are skipped.
    """
    running = mlflow.search_runs(
        filter_string="attributes.status = 'RUNNING'",
        output_format="list",
        search_all_experiments=True,
    )
    result, now, client = Reaped(), time.time(), mlflow.MlflowClient()
    for run in running:
        run_id = run.info.run_id
        try:
            judged = _silence(run, now, stale_after, unbeating_older_than)
        except ValueError:
            result.skipped.append((run_id, "its heartbeat tags are not numbers"))
            continue
        if judged is None and names.HEARTBEAT not in run.data.tags:
            result.unbeating.append((run_id, now - run.info.start_time / 1000))
            continue
        if judged is None or judged[0] < judged[1]:
            continue
        what = "no heartbeat" if names.HEARTBEAT in run.data.tags else "never sent a heartbeat"
        client.set_tag(run_id, names.FAILURE_REASON, f"reaped: {what} for {judged[0]:.0f} s")
        client.set_terminated(run_id, "KILLED")
        _fail_pending_models(client, run)
        result.killed.append(run_id)
    return result
