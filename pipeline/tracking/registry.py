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

    from pipeline import keras_runtime  # noqa: F401  TensorFlow loaded quietly, not by the model

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
    """The champion gate's decision: the new version, the champion before it and after it."""

    name: str
    version: str
    accuracy: float
    before: str | None  # the champion when the evaluation began (None: there was none)
    before_accuracy: float | None
    after: str | None  # the champion the gate left (None: it could not compare)
    after_accuracy: float | None
    other_test_set: bool = False  # the champion was scored on other test images

    @property
    def promoted(self) -> bool:
        return self.after == self.version

    def describe(self) -> str:
        new = f"{self.name} v{self.version} ({self.accuracy:.4f})"
        if self.other_test_set:
            return (
                f"{new} was tested on other images than champion v{self.before}: not compared, "
                "the champion stays (evaluate it on these images to compare)"
            )
        after = f"v{self.after} ({_text(self.after_accuracy)})"
        if self.promoted:
            if self.before is None:
                return f"{new} is the first champion"
            before = f"v{self.before} ({_text(self.before_accuracy)})"
            return f"{new} beats champion {before}: it is the new champion"
        if self.after == self.before:
            return f"{new} does not beat champion {after}: it stays registered, not champion"
        if self.before is None:  # another evaluate registered a better version meanwhile
            return f"{new} does not beat champion {after}: it stays registered, not champion"
        return (
            f"{new} does not beat {after}, the best-tested version: the champion alias moves "
            f"from v{self.before} to v{self.after}"
        )


def _text(accuracy: float | None) -> str:
    return f"{accuracy:.4f}" if accuracy is not None else "untested"


def register_if_better(
    target: ModelTarget, accuracy: float, description: str, test_set: str
) -> Registration:
    """Register the model with its test accuracy and the digest of its test images (test_set),
    then move the champion alias to the best-tested version of those scored on the same images.
    Convergent and idempotent: whatever the interleaving of evaluates, the last one to finish
    leaves the alias on the best version, since every version carries its tags from the moment
    it is registered. A champion scored on other images is not compared with: it stays."""
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    name = cfg.architecture(target.arch).registered_model
    # Register the logged model itself (MLflow 3 keeps it outside the run's artifacts).
    model_id = target.model_id
    source = f"models:/{model_id}" if model_id else target.model_uri
    tags = {names.VERSION_TEST_ACCURACY: f"{accuracy:.6f}", names.VERSION_TEST_SET: test_set}
    version = str(mlflow.register_model(source, name, tags=tags).version)
    client.update_model_version(name, version, description=description)
    if not client.get_registered_model(name).description:  # a description the user wrote stays
        client.update_registered_model(name, description=_registered_description(target.arch))
    try:  # read now, not before registering: a concurrent evaluate may have moved it
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champion = None
    before = str(champion.version) if champion else None
    before_accuracy = _accuracy(champion) if champion else None
    if champion is not None and _test_set(champion) not in (None, test_set):
        return Registration(name, version, accuracy, before, before_accuracy, None, None, True)
    best = _best_version(client, name, test_set)
    if best is not None:
        client.set_registered_model_alias(name, CHAMPION, best[0])
    after, after_accuracy = best if best else (None, None)
    return Registration(name, version, accuracy, before, before_accuracy, after, after_accuracy)


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


def _test_set(version) -> str | None:
    """The digest of the test images a version was scored on (None: registered before it was
    recorded, or by hand)."""
    return version.tags.get(names.VERSION_TEST_SET)


def _best_version(
    client: mlflow.MlflowClient, name: str, test_set: str
) -> tuple[str, float] | None:
    """(version, accuracy) of the highest test accuracy among the versions scored on these test
    images (or not saying which), the earliest one on a tie."""
    scored = [
        (accuracy, -int(version.version), str(version.version))
        for version in client.search_model_versions(f"name = '{name}'")
        if (accuracy := _accuracy(version)) is not None and _test_set(version) in (None, test_set)
    ]
    if not scored:
        return None
    accuracy, _, version = max(scored)
    return version, accuracy
