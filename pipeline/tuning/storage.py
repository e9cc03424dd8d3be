"""Study storage: opening it (RDB with heartbeats, or a journal file), creating its schema, and
reaping a dead worker's trial."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import optuna

from pipeline import config as cfg
from pipeline import locks, tracking
from pipeline.errors import PipelineError, first_line, redact, scrub
from pipeline.tracking import names
from pipeline.tuning import journal

JOURNAL = "journal:///"  # an Optuna journal file's URL prefix (a project convention)


class ReapAndRetry:
    """For a trial whose worker died: mark its MLflow run KILLED, then queue the trial again."""

    def __init__(self, max_retry: int = 3) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        run_id = trial.user_attrs.get(names.RUN_ATTR)
        if run_id:
            try:  # the retry matters more than the MLflow record
                tracking.finish_run(run_id, "KILLED", "worker died")
            except Exception:
                pass
        self.retry(study, trial)


def _local_file(url: str) -> Path | None:
    """The file of a local storage: a journal's or SQLite's (None for database servers)."""
    if url.startswith(JOURNAL):  # as SQLite's: journal:///relative, journal:////absolute
        return Path(url[len(JOURNAL) :] or ".")
    return locks.sqlite_path(url)


def _check_writable(url: str) -> None:
    """A local storage that cannot be written is one line naming its file, before Optuna
    reports it as "invalid data in the commit" deep inside a study."""
    path = _local_file(url)
    if path is None:
        return
    if path.is_dir():
        raise PipelineError(f"cannot open --storage {redact(url)}: {path} is a folder, not a file")
    # SQLite writes a journal beside its file; a new file is made in its nearest folder.
    folder = next(parent for parent in path.absolute().parents if parent.exists())
    if path.exists() and not os.access(path, os.W_OK):
        raise PipelineError(f"cannot open --storage {redact(url)}: {path} is read-only")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PipelineError(f"cannot open --storage {redact(url)}: {folder} is not writable")


@contextlib.contextmanager
def failures_named(url: str) -> Iterator[None]:
    """A storage that fails mid-study (a full disk, say) is one line naming its file (or its
    redacted URL), with the database's own words instead of Optuna's "invalid data in the
    commit"."""
    try:
        yield
    except Exception as error:
        failure = _storage_failure(error)
        if failure is None:
            raise
        cause = failure.__cause__ or failure
        where = _local_file(url) or redact(url)
        raise PipelineError(
            f"the study storage {where} failed: {scrub(first_line(cause), url)}"
        ) from None


def _storage_failure(error: BaseException | None) -> BaseException | None:
    """The storage's own failure behind an error, if there is one: when a trial's result cannot
    be stored, Optuna's optimize hides that failure behind "AssertionError: Should not reach."
    (raised while it was handling it)."""
    while error is not None:
        if isinstance(error, optuna.exceptions.StorageInternalError):
            return error
        error = error.__cause__ or error.__context__
    return None


def open_storage(url: str, heartbeat_seconds: int = 10) -> optuna.storages.BaseStorage:
    """The study storage: RDB (SQLite, PostgreSQL) with a heartbeat, or a journal file."""
    _check_writable(url)
    try:
        if url.startswith(JOURNAL):
            return optuna.storages.JournalStorage(journal.TidyJournal(str(_local_file(url))))
        connect_args = {"connect_timeout": 10} if url.startswith("postgresql") else {}
        if url.startswith("sqlite"):
            connect_args = {"timeout": 60}  # several local workers wait for the file lock
        with warnings.catch_warnings(), locks.store_creation(url):
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # A trial whose worker stops beating for 3 intervals is failed and queued again.
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs={"connect_args": connect_args},
                heartbeat_interval=heartbeat_seconds,
                grace_period=cfg.HEARTBEAT_GRACE_BEATS * heartbeat_seconds,
                heartbeat_stale_trial_callback=ReapAndRetry(),
            )
    except Exception as error:  # SQLAlchemy's errors for bad URLs and unreachable servers
        message = scrub(first_line(error), url)
        raise PipelineError(f"cannot open --storage {redact(url)}: {message}") from None


def repairs(storage: optuna.storages.BaseStorage) -> str | None:
    """What opening a journal study repaired, in words (None: nothing)."""
    backend = getattr(storage, "_backend", None)  # a JournalStorage's
    dropped = getattr(backend, "dropped", [])
    if not dropped:
        return None
    lines = ", ".join(map(str, dropped))
    return (
        f"the study journal dropped its damaged line(s) {lines} (a writer killed mid-append "
        "left them); every other record is read"
    )


def init_storage(url: str) -> None:
    """Create the storage's schema once, before parallel workers start."""
    open_storage(url)
