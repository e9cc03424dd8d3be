"""Everything MLflow: store set-up, the run context (signals, true end states), dataset inputs."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import warnings
from collections.abc import Iterator

import mlflow
from mlflow.entities import RunStatus

from pipeline import config as cfg
from pipeline.config import PipelineError

STAGE_TAG = "pipeline.stage"
ARCH_TAG = "pipeline.arch"
DIGEST_TAG = "pipeline.data_digest"
CONFIG_HASH_TAG = "pipeline.config_hash"
FAILURE_TAG = "pipeline.failure_reason"


class RunInterrupted(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives, so runs end KILLED like on Ctrl-C."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signal_number).name}")
        self.signal_number = signal_number


def setup(experiment: str | None = None) -> str:
    """Point MLflow at the configured store and experiment; returns the tracking URI."""
    uri = cfg.tracking_uri()
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # keep the CLI's output readable
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.set_experiment(experiment or cfg.experiment_name())
    except Exception as error:  # any store failure becomes one line for the user
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PipelineError(f"cannot use tracking store {redact(uri)}: {message}") from None
    return uri


def redact(uri: str) -> str:
    """A URI with any password replaced by ***."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    def handler(signal_number, _frame):
        # Ignore repeats while the run is being closed, so its end state is always written.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise RunInterrupted(signal_number)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def run(
    stage: str,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    run_id: str | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """A run that always ends FINISHED, FAILED (with the reason) or KILLED, never RUNNING."""
    with _sigterm_raises():
        active = mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name)
        try:
            mlflow.set_tags({STAGE_TAG: stage, **(tags or {})})
            yield active
        except KeyboardInterrupt:
            _end(RunStatus.KILLED, "interrupted")
            raise
        except BaseException as error:
            _end(RunStatus.FAILED, str(error).splitlines()[0] if str(error) else repr(error))
            raise
        else:
            _end(RunStatus.FINISHED, None)


def _end(status: int, reason: str | None) -> None:
    with contextlib.suppress(Exception):
        if reason:
            mlflow.set_tag(FAILURE_TAG, reason[:500])
    mlflow.end_run(RunStatus.to_string(status))


def log_download_run(result) -> str:
    """Record a download stage run: source, checksums, counts, officialness and the dataset."""

    tags = {DIGEST_TAG: result.digest, "pipeline.official_data": str(result.official).lower()}
    with run("download", run_name="download", tags=tags) as active:
        mlflow.log_params({"source": redact(result.source)[:500], "official": result.official})
        for name, entry in result.files.items():
            stem = name.split(".")[0]
            mlflow.log_params({f"md5.{stem}": entry["md5"], f"official.{stem}": entry["official"]})
        mlflow.log_metrics({f"{split}_count": count for split, count in result.counts.items()})
        mlflow.log_dict(
            {"files": result.files, "counts": result.counts, "class_counts": result.class_counts},
            "download_manifest.json",
        )
        log_dataset(result.data_dir, result.digest, context="download")
        return active.info.run_id


def log_dataset(data_dir, digest: str, context: str) -> None:
    """Attach the cached training set as an mlflow.data input carrying the house digest."""
    import mlflow.data
    import numpy as np

    from pipeline.data import CACHE_NAME

    with np.load(os.path.join(data_dir, CACHE_NAME)) as arrays, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "source can be interpreted in ways"
        dataset = mlflow.data.from_numpy(
            features=arrays["train_images"],
            targets=arrays["train_labels"],
            name="mnist-train",
            digest=digest,
            source=os.path.abspath(data_dir),
        )
    mlflow.log_input(dataset, context=context)
