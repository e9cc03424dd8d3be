"""Model registry helpers: resolve what to evaluate, load it, and gate the champion alias."""

from __future__ import annotations

from dataclasses import dataclass

import mlflow

from pipeline import config as cfg
from pipeline.backend import keras
from pipeline.config import PipelineError
from pipeline.tracking import first_line, redact

REGISTERED_NAMES = {"mlp": "mnist-mlp", "lstm": "mnist-lstm"}
CHAMPION = "champion"


@dataclass(frozen=True)
class ModelTarget:
    """A model to evaluate and the train run it belongs to."""

    run_id: str
    experiment_id: str
    model_uri: str
    arch: str
    registrable: bool  # False when the URI already names a registered version


@dataclass(frozen=True)
class Registration:
    """The champion gate's decision."""

    name: str
    version: str
    promoted: bool
    previous_version: str | None
    previous_accuracy: float | None
    accuracy: float

    def describe(self) -> str:
        if self.previous_version is None:
            return f"{self.name} v{self.version} is the first champion ({self.accuracy:.4f})"
        verdict = "beats" if self.promoted else "does not beat"
        outcome = "is the new champion" if self.promoted else "stays registered, not champion"
        return (
            f"{self.name} v{self.version} ({self.accuracy:.4f}) {verdict} champion "
            f"v{self.previous_version} ({self.previous_accuracy:.4f}): it {outcome}"
        )


def _model_run(run_id: str, model_uri: str, registrable: bool) -> ModelTarget:
    from mlflow.exceptions import MlflowException
    from mlflow.models import get_model_info

    try:
        run = mlflow.get_run(run_id)
    except MlflowException:
        raise PipelineError(f"no run {run_id} in {redact(cfg.tracking_uri())}") from None
    try:
        get_model_info(model_uri)
    except Exception:
        raise PipelineError(
            f"run {run_id} has no logged model at {model_uri} (only finished train runs have one)"
        ) from None
    arch = run.data.params.get("arch")
    if arch not in REGISTERED_NAMES:
        raise PipelineError(f"run {run_id} is not a train run (no arch param)")
    return ModelTarget(run_id, run.info.experiment_id, model_uri, arch, registrable)


def resolve_model(run_id: str | None, model_uri: str | None) -> ModelTarget:
    """The train run and model a --run-id or --model-uri names; one-line errors otherwise."""
    from mlflow.exceptions import MlflowException

    if bool(run_id) == bool(model_uri):
        raise PipelineError("give exactly one of --run-id or --model-uri")
    if run_id:
        return _model_run(run_id, f"runs:/{run_id}/model", registrable=True)
    if model_uri.startswith("runs:/"):
        return _model_run(model_uri[len("runs:/") :].split("/")[0], model_uri, registrable=True)
    if not model_uri.startswith("models:/"):
        raise PipelineError(
            f"--model-uri {model_uri}: expected runs:/RUN_ID/model, models:/NAME@ALIAS "
            f"or models:/NAME/VERSION"
        )
    reference, client = model_uri[len("models:/") :], mlflow.MlflowClient()
    try:
        if "@" in reference:
            source_run = client.get_model_version_by_alias(*reference.split("@", 1)).run_id
        elif "/" in reference:
            source_run = client.get_model_version(*reference.split("/", 1)).run_id
        else:
            source_run = mlflow.get_logged_model(reference).source_run_id
    except MlflowException as error:
        message = first_line(error)
        raise PipelineError(f"--model-uri {model_uri} does not resolve: {message}") from None
    return _model_run(source_run, model_uri, registrable=False)


def load_model(model_uri: str) -> keras.Model:
    """The Keras model behind a URI (Keras safe mode stays on: no arbitrary code is loaded)."""
    import mlflow.tensorflow

    return mlflow.tensorflow.load_model(model_uri)


def register_if_better(target: ModelTarget, accuracy: float) -> Registration:
    """Register the model; move the champion alias only when it beats the current champion."""
    from mlflow.exceptions import MlflowException

    client, name = mlflow.MlflowClient(), REGISTERED_NAMES[target.arch]
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champion = None
    from mlflow.models import get_model_info

    # Register the logged model itself (MLflow 3 keeps it outside the run's artifacts).
    model_id = get_model_info(target.model_uri).model_id
    source = f"models:/{model_id}" if model_id else target.model_uri
    version = mlflow.register_model(source, name).version
    client.set_model_version_tag(name, version, "test_accuracy", f"{accuracy:.6f}")
    previous = float(champion.tags["test_accuracy"]) if champion else None
    promoted = champion is None or accuracy > previous
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    return Registration(
        name, str(version), promoted, champion.version if champion else None, previous, accuracy
    )
