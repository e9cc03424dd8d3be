"""The tracking store: opened once per process (which store and experiment, dead runs reaped),
and the process-wide settings a command-line process uses it with."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mlflow

from pipeline import config as cfg
from pipeline import locks
from pipeline.errors import PipelineError, first_line, redact, scrub
from pipeline.tracking import heartbeat, names

# Database servers MLflow reaches through SQLAlchemy (retrying for minutes when they fail).
SERVER_DATABASES = ("postgresql", "mysql", "mssql")
DEFAULT_EXPERIMENT_ID = "0"  # MLflow's own "Default" experiment
DESCRIPTION = (
    "MNIST runs of the `pipeline` project: two architectures from the "
    "classic TensorFlow notebooks, an LSTM reading 28 rows of 28 pixels and a 256-256 ReLU MLP. "
    "Stages: download (data and its digest), train (per-step loss and accuracy, validation per "
    "epoch, the model), evaluate (official test set, registry champion), tune (Optuna studies, "
    "one child run per trial), report, and main (all of them as children of one run). Runs are "
    "tagged pipeline.stage and pipeline.arch; the model training view lists them."
)


def configure_process(uri: str) -> None:
    """Process-wide settings for a command-line process using the store at uri (the CLI edge
    calls this once; a stage never does): quiet MLflow loggers, no artifact progress bars, no
    printed run URL that would carry a password, and short HTTP retries against a server."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # keep the CLI's output readable
    # A store error is reported as one line by the stage; MLflow would log its traceback too,
    # and its asynchronous logging queue the failed statement's SQL.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    logging.getLogger("mlflow.utils.async_logging").setLevel(logging.CRITICAL)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if redact(uri) != uri:  # MLflow prints "View run at <URL>" with the URL's password
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if uri.startswith(("http://", "https://")):
        # MLflow's own defaults retry for minutes; a CLI should say within seconds that the
        # server is unreachable (users can still raise these).
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "8")


@dataclass
class Store:
    """The tracking store a process's stages log to, opened on first use and only once: MLflow
    pointed at it and at the experiment (see _experiment; step_of: the run id whose steps this
    process's runs are, a study's in its trial processes, say), and, with reap, runs whose
    process died marked KILLED, each said through say."""

    uri: str
    reap: bool = True
    step_of: str | None = None
    say: Callable[[str], None] = lambda line: None
    opened: bool = field(default=False, init=False)

    def open(self) -> Store:
        if self.opened:
            return self
        _open(self.uri, self.step_of)
        self.opened = True
        if self.reap:  # runs whose process died (SIGKILL) end KILLED, not RUNNING forever
            reaped = heartbeat.reap()
            for run_id in reaped.killed:
                self.say(f"marked run {run_id} KILLED: its process stopped sending heartbeats")
            for run_id, why in reaped.skipped:
                self.say(f"left run {run_id} RUNNING: {why}")
        return self


def _open(uri: str, step_of: str | None) -> None:
    mlflow.set_tracking_uri(uri)
    try:
        # The first access creates a SQLite store's schema: one local process at a time.
        with locks.store_creation(uri):
            _check_database(uri)
            chosen = mlflow.set_experiment(**_experiment(step_of))
            _gather_statistics(uri)
        # A description the user wrote stays; MLflow's shared Default experiment is not ours.
        if names.NOTE not in chosen.tags and chosen.experiment_id != DEFAULT_EXPERIMENT_ID:
            mlflow.MlflowClient().set_experiment_tag(chosen.experiment_id, names.NOTE, DESCRIPTION)
    except PipelineError:
        raise
    except Exception as error:  # any store failure becomes one line for the user
        raise PipelineError(
            f"cannot use tracking store {redact(uri)}: {scrub(first_line(error), uri)}"
        ) from None


def _gather_statistics(uri: str) -> None:
    """Give a SQLite store's query planner statistics once it holds metrics (ANALYZE, sampled).

    Without them SQLite reads one run's metric history through the (key, ...) index, every
    run's points of that metric: a store of many trial runs answers a history tens of times
    slower (bench/store_scale.py measures both, and ANALYZE itself). It runs again only if the
    statistics table lacks the metrics."""
    path = locks.sqlite_path(uri)
    if path is None or not path.exists():
        return
    with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(path)) as db:
        if db.execute("SELECT 1 FROM metrics LIMIT 1").fetchone() is None:
            return  # nothing to sample yet
        with contextlib.suppress(sqlite3.OperationalError):  # no statistics table yet
            if db.execute("SELECT 1 FROM sqlite_stat1 WHERE tbl = 'metrics'").fetchone():
                return
        db.execute("PRAGMA analysis_limit = 10000")  # 400 misjudged the key index: wrong plan
        db.execute("ANALYZE")
        db.commit()


def _check_database(uri: str) -> None:
    """Fail at once on a database store that cannot be opened: MLflow retries opening it nine
    times, sleeping longer each time, which helps a database server that is still starting but
    leaves a user who mistyped a URL or points at a read-only folder waiting in silence. (The
    stage reports what this raises as one line.)"""
    path = locks.sqlite_path(uri)
    if path is not None:
        if not path.exists():  # MLflow creates it, and its folder
            folder = next(parent for parent in path.absolute().parents if parent.exists())
            if not os.access(folder, os.W_OK | os.X_OK):
                raise OSError(f"unable to open database file {path}: {folder} is not writable")
            return
        import sqlite3

        try:
            # A store other processes are writing is locked for a moment, not unopenable.
            reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            with contextlib.closing(reader):
                reader.execute("PRAGMA schema_version")
        except sqlite3.Error as error:
            raise OSError(f"unable to open database file {path}: {error}") from None
    elif uri.split(":", 1)[0].split("+", 1)[0] in SERVER_DATABASES:
        import sqlalchemy

        engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
        try:
            engine.connect().close()
        finally:
            engine.dispose()


def _experiment(step_of: str | None = None) -> dict[str, Any]:
    """Where this process's runs go: the experiment of the run they are steps of
    (the main job, a study: active here, or step_of); else the run `mlflow run` made
    (MLFLOW_RUN_ID, which MLflow drops once adopted); else MLFLOW_EXPERIMENT_NAME,
    MLFLOW_EXPERIMENT_ID, or the house default."""
    active = mlflow.active_run()
    if active is not None:
        return {"experiment_id": active.info.experiment_id}
    if step_of is not None:
        return {"experiment_id": mlflow.get_run(step_of).info.experiment_id}
    adopted = os.environ.get("MLFLOW_RUN_ID")
    if adopted:
        return {"experiment_id": mlflow.get_run(adopted).info.experiment_id}
    if not os.environ.get("MLFLOW_EXPERIMENT_NAME") and os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return {"experiment_id": os.environ["MLFLOW_EXPERIMENT_ID"]}
    return {"experiment_name": cfg.experiment_name()}


def current_experiment() -> str:
    """The name of the experiment Store.open() chooses for a stage started now."""
    chosen = _experiment()
    if "experiment_id" in chosen:
        return mlflow.get_experiment(chosen["experiment_id"]).name
    return chosen["experiment_name"]


def current_experiment_id() -> str:
    """The id of the experiment Store.open() chose (call it after)."""
    chosen = _experiment()
    if "experiment_id" in chosen:
        return str(chosen["experiment_id"])
    experiment = mlflow.get_experiment_by_name(chosen["experiment_name"])
    if experiment is None:
        raise PipelineError(f"no experiment {chosen['experiment_name']} (open the store first)")
    return experiment.experiment_id


def record_system_metrics(enabled: bool) -> None:
    """Whether runs started from now on sample CPU and memory (MLflow system metrics)."""
    if enabled:
        mlflow.enable_system_metrics_logging()
    else:
        mlflow.disable_system_metrics_logging()
