"""The model registry: resolve and load a model, and gate the champion alias."""

from __future__ import annotations

from dataclasses import dataclass

import mlflow

from pipeline import architectures
from pipeline import config as cfg
from pipeline.errors import PipelineError, first_line, redact
from pipeline.tracking import names

CHAMPION = "champion"


def load_model(model_uri: str):
    """The pyfunc model behind a URI: what serving runs (its Keras model loads in safe mode)."""
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.pyfunc.load_model(model_uri)
    except (OSError, ValueError, MlflowException) as error:  # missing or damaged model files
        raise PipelineError(f"cannot load {model_uri}: {first_line(error)}") from None


@dataclass(frozen=True)
class ModelTarget:
    """A model to evaluate and the train run it belongs to."""

    run_id: str
    experiment_id: str
    model_uri: str
    arch: str
    registrable: bool  # False when the URI already names a registered version
    model_id: str | None = None  # the MLflow 3 logged model, when the URI names one


def resolve_model(run_id: str | None, model_uri: str | None) -> ModelTarget:
    """The train run and model a --run-id or --model-uri names; one-line errors otherwise."""
    from mlflow.models import get_model_info

    if bool(run_id) == bool(model_uri):
        raise PipelineError("give exactly one of --run-id or --model-uri")
    if model_uri and not model_uri.startswith(("runs:/", "models:/")):
        raise PipelineError(f"--model-uri {model_uri}: expected {cfg.MODEL_URI_FORMS}")
    store = redact(mlflow.get_tracking_uri())
    uri = model_uri or ""
    if run_id:
        try:
            uri = mlflow.get_run(run_id).data.tags.get(names.MODEL_URI, "none")
        except Exception:
            raise PipelineError(f"no run {run_id} in {store}") from None
    try:
        info = get_model_info(uri)
        if info.model_id and str(mlflow.get_logged_model(info.model_id).status) != "READY":
            raise PipelineError(f"its logging did not complete ({info.model_id})")
        source_run = info.run_id
        run = mlflow.get_run(source_run)
    except Exception as error:
        if run_id:
            raise PipelineError(
                f"run {run_id} has no logged model (only finished train runs have one)"
            ) from None
        raise PipelineError(
            f"--model-uri {uri} does not resolve in {store}: {first_line(error)}"
        ) from None
    arch = run.data.params.get("arch")
    if arch not in architectures.names():
        raise PipelineError(f"run {source_run} is not a train run (no arch param)")
    registered = uri.startswith("models:/") and ("@" in uri or uri.count("/") > 1)
    return ModelTarget(
        source_run, run.info.experiment_id, uri, arch, not registered, info.model_id
    )


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
        previous = (
            f"{self.previous_accuracy:.4f}" if self.previous_accuracy is not None else "untested"
        )
        return (
            f"{self.name} v{self.version} ({self.accuracy:.4f}) {verdict} champion "
            f"v{self.previous_version} ({previous}): it {outcome}"
        )


def register_if_better(target: ModelTarget, accuracy: float, description: str) -> Registration:
    """Register the model with its test accuracy, then move the champion alias to the best-tested
    version of all. Convergent and idempotent: whatever the interleaving of evaluates, the last
    one to finish leaves the alias on the best version, since every version carries its tag
    from the moment it is registered."""
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    name = cfg.architecture(target.arch).registered_model
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champion = None
    # Register the logged model itself (MLflow 3 keeps it outside the run's artifacts).
    model_id = target.model_id
    source = f"models:/{model_id}" if model_id else target.model_uri
    tags = {names.VERSION_TEST_ACCURACY: f"{accuracy:.6f}"}
    version = str(mlflow.register_model(source, name, tags=tags).version)
    client.update_model_version(name, version, description=description)
    if not client.get_registered_model(name).description:  # a description the user wrote stays
        client.update_registered_model(name, description=_registered_description(target.arch))
    best = _best_version(client, name)
    if best is not None:
        client.set_registered_model_alias(name, CHAMPION, best)
    previous = _accuracy(champion) if champion else None
    return Registration(
        name,
        version,
        best == version,
        champion.version if champion else None,
        previous,
        accuracy,
    )


def _registered_description(arch: str) -> str:
    entry = cfg.architecture(arch)
    return (
        f"The {entry.summary} of the MNIST pipeline; every evaluated model is a version, "
        f"tagged with its test accuracy. The alias @{CHAMPION} is the version with the best "
        f"test accuracy on the official test set. {cfg.SERVING_CONTRACT} Serve: mlflow models "
        f"serve -m models:/{entry.registered_model}@{CHAMPION} --env-manager local."
    )


def _accuracy(version) -> float | None:
    try:
        return float(version.tags[names.VERSION_TEST_ACCURACY])
    except (KeyError, ValueError):  # a version registered by hand: never the champion
        return None


def _best_version(client: mlflow.MlflowClient, name: str) -> str | None:
    """The version with the highest test accuracy (the earliest one on a tie)."""
    scored = [
        (accuracy, -int(version.version), str(version.version))
        for version in client.search_model_versions(f"name = '{name}'")
        if (accuracy := _accuracy(version)) is not None
    ]
    return max(scored)[2] if scored else None
