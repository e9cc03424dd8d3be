"""Everything MLflow: store set-up, the run context (signals, true end states), dataset inputs."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
import warnings
from collections.abc import Iterator

import mlflow
from mlflow.entities import Metric, RunStatus, RunTag

from pipeline import config as cfg
from pipeline import heartbeat
from pipeline.backend import keras
from pipeline.config import PipelineError, StageInterrupted
from pipeline.console import stderr

STAGE_TAG = "pipeline.stage"
ARCH_TAG = "pipeline.arch"
DIGEST_TAG = "pipeline.data_digest"
CONFIG_HASH_TAG = "pipeline.config_hash"
FAILURE_TAG = heartbeat.FAILURE_TAG


class RunInterrupted(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives, so runs end KILLED like on Ctrl-C."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signal_number).name}")
        self.signal_number = signal_number


def setup(experiment: str | None = None) -> str:
    """Point MLflow at the configured store and experiment; returns the tracking URI."""
    uri = cfg.tracking_uri()
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # keep the CLI's output readable
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if uri.startswith(("http://", "https://")):
        # MLflow's own defaults retry for minutes; a CLI should say within ~30 s that the
        # server is unreachable (users can still raise these).
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "8")
    mlflow.set_tracking_uri(uri)
    try:
        adopted = os.environ.get("MLFLOW_RUN_ID")  # `mlflow run` made the run: use its experiment
        if adopted and experiment is None:
            mlflow.set_experiment(experiment_id=mlflow.get_run(adopted).info.experiment_id)
        else:
            mlflow.set_experiment(experiment or cfg.experiment_name())
    except Exception as error:  # any store failure becomes one line for the user
        raise PipelineError(
            f"cannot use tracking store {redact(uri)}: {first_line(error)}"
        ) from None
    # Runs whose process died (SIGKILL) end KILLED instead of staying RUNNING forever.
    for run_id in heartbeat.reap():
        stderr.print(f"marked run {run_id} KILLED: its process stopped sending heartbeats")
    return uri


def redact(uri: str) -> str:
    """A URI with any password replaced by ***."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class _Interrupts:
    """A signal that arrives while training asks it to stop after the current batch."""

    pending: int | None = None
    hook = None


_INTERRUPTS = _Interrupts()


def interrupt_pending() -> int | None:
    """The signal number of a graceful stop under way, if any."""
    return _INTERRUPTS.pending


@contextlib.contextmanager
def stop_gracefully(hook) -> Iterator[None]:
    """While the block runs, SIGTERM / SIGINT call hook (say, stop Keras after this batch)
    instead of raising at an arbitrary point inside TensorFlow; a second signal still raises."""
    _INTERRUPTS.pending, _INTERRUPTS.hook = None, hook
    try:
        yield
    finally:
        _INTERRUPTS.hook = None


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    def handler(signal_number, _frame):
        if _INTERRUPTS.hook is not None and _INTERRUPTS.pending is None:
            _INTERRUPTS.pending = signal_number
            _INTERRUPTS.hook()
            return
        # Ignore repeats while the run is being closed, so its end state is always written.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise RunInterrupted(signal_number)

    previous = {
        number: signal.signal(number, handler) for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield
    finally:
        for number, action in previous.items():
            signal.signal(number, action)


@contextlib.contextmanager
def run(
    stage: str,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    run_id: str | None = None,
    killed_on: tuple[type[BaseException], ...] = (),
) -> Iterator[mlflow.ActiveRun]:
    """A run that always ends FINISHED, FAILED (with the reason) or KILLED, never RUNNING.

    With another run active (the main job, a study) the new run is its child. Otherwise it is
    run_id, or the run `mlflow run` made (MLFLOW_RUN_ID), or a new one. Exceptions in killed_on
    (an Optuna prune, say) end the run KILLED and propagate.
    """
    with _signals_raise():
        nested = mlflow.active_run() is not None
        active = mlflow.start_run(
            run_id=run_id, run_name=None if run_id else run_name, nested=nested
        )
        beat = heartbeat.Heartbeat(active.info.run_id)
        try:
            mlflow.set_tags({STAGE_TAG: stage, **(tags or {}), **_SCOPED_TAGS.get(stage, {})})
            yield active
        except KeyboardInterrupt as error:
            _end(RunStatus.KILLED, str(error) or "interrupted by SIGINT")
            number = getattr(error, "signal_number", signal.SIGINT)
            raise StageInterrupted(active.info.run_id, number) from None
        except (StageInterrupted, *killed_on) as error:  # a child was interrupted, or pruned
            _end(RunStatus.KILLED, str(error) or type(error).__name__)
            raise
        except BaseException as error:
            _end(RunStatus.FAILED, str(error).splitlines()[0] if str(error) else repr(error))
            raise
        else:
            _end(RunStatus.FINISHED, None)
        finally:
            beat.stop()


_SCOPED_TAGS: dict[str, dict[str, str]] = {}


@contextlib.contextmanager
def tag_runs(stage: str, tags: dict[str, str]) -> Iterator[None]:
    """Add tags to every run of this stage that starts inside the block."""
    previous = _SCOPED_TAGS.get(stage, {})
    _SCOPED_TAGS[stage] = {**previous, **tags}
    try:
        yield
    finally:
        _SCOPED_TAGS[stage] = previous


def finish_run(run_id: str, status: str) -> None:
    """Set a run's end state (FINISHED, FAILED or KILLED) without making it active."""
    mlflow.MlflowClient().set_terminated(run_id, status)


def _end(status: int, reason: str | None) -> None:
    # With the store gone the run stays RUNNING there until `pipeline reap` (no heartbeat).
    with contextlib.suppress(Exception):
        if reason:
            mlflow.set_tag(FAILURE_TAG, reason[:500])
    with contextlib.suppress(Exception):
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


def config_hash(params: dict) -> str:
    """A short hash of a run's params, for finding runs with the same configuration."""
    import hashlib

    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[
        :12
    ]


def first_line(error: BaseException) -> str:
    """An exception's first line, for one-line messages."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def model_signature():
    """The one contract both architectures share: raw 28x28 images in, 10 probabilities out."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    from pipeline.config import IMAGE_SIDE, NUM_CLASSES

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, IMAGE_SIDE, IMAGE_SIDE), "images")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, NUM_CLASSES), "probabilities")]),
    )


def log_model(model: keras.Model, input_example) -> str:
    """Log a serving model so that mlflow.pyfunc predicts from raw images; returns its URI."""
    import mlflow.tensorflow

    from pipeline.backend import tf

    # Explicit requirements: MLflow's inference would re-load the model in a subprocess.
    requirements = [
        f"tensorflow=={tf.__version__}",
        f"keras=={keras.__version__}",
        f"mlflow=={mlflow.__version__}",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = mlflow.tensorflow.log_model(
            model,
            name="model",
            signature=model_signature(),
            input_example=input_example,
            pip_requirements=requirements,
        )
    mlflow.set_tag("pipeline.model_uri", f"runs:/{mlflow.active_run().info.run_id}/model")
    return info.model_uri


def metric_history(run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) pairs of one metric of a run, ordered by step."""
    history = mlflow.MlflowClient().get_metric_history(run_id, key)
    return sorted((metric.step, metric.value) for metric in history)


def latest_metrics(run_id: str) -> dict[str, float]:
    """The latest value of every metric of a run."""
    return dict(mlflow.get_run(run_id).data.metrics)


def check_resumable(run_id: str) -> None:
    """Raise unless run_id names a train run that did not finish."""
    try:
        found = mlflow.get_run(run_id)
    except Exception:
        uri = redact(cfg.tracking_uri())
        raise PipelineError(f"--resume {run_id}: no such run in {uri}") from None
    if found.info.status == "FINISHED":
        raise PipelineError(f"--resume {run_id}: the run already finished")


EVALUATED_TAG = "pipeline.evaluated_on"


def log_onto(run_id: str, metrics=None, artifacts=None, tags=None) -> None:
    """Add metrics, an artifact folder (local folder, artifact path) and tags to another run."""
    client = mlflow.MlflowClient()
    stamp = int(time.time() * 1000)
    metric_list = [Metric(key, float(value), stamp, 0) for key, value in (metrics or {}).items()]
    tag_list = [RunTag(key, str(value)) for key, value in (tags or {}).items()]
    if metric_list or tag_list:
        client.log_batch(run_id, metrics=metric_list, tags=tag_list)
    if artifacts:
        client.log_artifacts(run_id, str(artifacts[0]), artifacts[1])
