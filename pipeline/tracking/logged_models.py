"""Logging a model into the active run: the served model with its signature, its pinned
requirements, its metrics and datasets; a failed upload leaves nothing that looks loadable."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

import mlflow

from pipeline import config as cfg
from pipeline.tracking import names

SERVING_CODE = Path(__file__).resolve().parents[1] / "serving.py"  # logged with each model


def log_model(model, name: str, step: int, description: str) -> str:
    """Log a Keras serving model into the active run, as the model after `step` optimizer
    steps; returns its model id.

    The logged model is pipeline/serving.py (MLflow's "models from code") holding the Keras
    model as an artifact: pyfunc and `mlflow models serve` take raw images in any numeric
    dtype without this project installed, and its signature (see `_signature`) shows the
    images it scores. Model names cannot hold dots, so a name's dots become underscores.
    """
    import mlflow.pyfunc

    from pipeline.keras_runtime import keras, tf

    # Explicit requirements: MLflow's inference would re-load the model in a subprocess.
    requirements = [
        f"tensorflow=={tf.__version__}",
        f"keras=={keras.__version__}",
        f"mlflow=={mlflow.__version__}",
    ]
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), _pins_trusted():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "model.keras"
        model.save(path)
        try:
            info = mlflow.pyfunc.log_model(
                name=name.replace(".", "_"),
                python_model=str(SERVING_CODE),
                artifacts={"keras_model": str(path)},  # serving.py loads its one artifact
                step=step,
                pip_requirements=requirements,
                signature=_signature(),
                tags={names.NOTE: description},
            )
        except BaseException:
            _discard_failed_uploads()
            raise
    return info.model_id


def _signature():
    """The input and output the UI shows: a float32 batch of 28x28 images, 10 probabilities.

    The served model checks its input itself (serving.as_images: any numeric dtype, rows of
    784 pixels, finite 0-255 intensities, the reason first when refused). MLflow would enforce
    a tensor schema strictly (one dtype, one shape) before that code runs, so the signature is
    marked the way MLflow marks a model that validates its own input (a signature from the
    predict function's type hint): pyfunc and the scoring server pass the request through, and
    the server takes JSON `{"inputs": ...}` only (not MLflow's `dataframe_*` or `instances`);
    tests/test_evaluate.py checks pyfunc and the server.
    """
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    side = cfg.IMAGE_SIDE
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, side, side))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, cfg.NUM_CLASSES))]),
    )
    signature._is_signature_from_type_hint = True  # the model validates its own input
    return signature


def _discard_failed_uploads() -> None:
    """Delete the files a failed upload (a full disk, say) left under the active run's FAILED
    logged models, where they are local: truncated files that look like a model help no one,
    and on a full disk the space is wanted back. The FAILED models stay, as the record."""
    active = mlflow.active_run()
    if active is None:
        return
    with contextlib.suppress(Exception):  # the store may be what failed: keep the first error
        for model in mlflow.search_logged_models(
            experiment_ids=[active.info.experiment_id],
            filter_string=f"source_run_id = '{active.info.run_id}'",  # status: not filterable
            output_format="list",
        ):
            if str(model.status) != "FAILED":
                continue
            location = urllib.parse.urlparse(model.artifact_location)
            if location.scheme in ("", "file"):
                shutil.rmtree(urllib.request.url2pathname(location.path), ignore_errors=True)


@contextlib.contextmanager
def _pins_trusted():
    """Skip MLflow's check that a model's pip requirements match the running environment while
    logging: it indexes every installed package's files (seconds per process), and our pins are
    read from that very environment."""
    from mlflow.utils import environment

    name = "warn_dependency_requirement_mismatches"
    original = getattr(environment, name, None)
    if original is None:  # MLflow moved it: keep its behaviour
        yield
        return
    setattr(environment, name, lambda requirements: None)
    try:
        yield
    finally:
        setattr(environment, name, original)


def link_metrics(run_id: str, model_id: str, metrics, datasets: dict[str, tuple[str, str]]):
    """Log metrics (already on the run) onto a logged model, each with the dataset it was
    measured on: datasets maps a key prefix (train_, val_) to (dataset name, digest).

    The run's own history is unchanged: a metric with the same key, value, time and step
    is stored once.
    """
    from mlflow.entities import Metric

    linked = []
    for metric in metrics:
        for prefix, (dataset, digest) in datasets.items():
            if metric.key.startswith(prefix):
                linked.append(
                    Metric(
                        metric.key,
                        metric.value,
                        metric.timestamp,
                        metric.step,
                        model_id=model_id,
                        dataset_name=dataset,
                        dataset_digest=digest,
                        run_id=run_id,
                    )
                )
    if linked:
        mlflow.MlflowClient().log_batch(run_id, metrics=linked)
