"""Frozen config dataclasses, presets, default paths and store URIs: the home for defaults."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path


class PipelineError(ValueError):
    """Bad input or a failed precondition, reported to the user as one line."""


class StageInterrupted(Exception):
    """A stage stopped by SIGINT or SIGTERM after closing its run as KILLED."""

    def __init__(self, run_id: str, signal_number: int) -> None:
        name = "SIGTERM" if signal_number == 15 else "SIGINT"
        super().__init__(f"interrupted by {name}; run {run_id} was marked KILLED")
        self.run_id, self.signal_number = run_id, signal_number


DEFAULT_DATA_DIR = Path("data/mnist")
DEFAULT_CHECKPOINT_DIR = Path("checkpoints")
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "mnist"

# name -> (file name, official MD5, IDX kind)
MNIST_FILES: dict[str, tuple[str, str, str]] = {
    "train-images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", "images"),
    "train-labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", "labels"),
    "test-images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", "images"),
    "test-labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", "labels"),
}
OFFICIAL_CHECKSUMS = {spec[0]: spec[1] for spec in MNIST_FILES.values()}

MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
)

ARCHITECTURES = ("mlp", "lstm")
PRESETS = ("default", "seed")
SCHEDULES = ("constant", "cosine")
IMAGE_SIDE = 28
NUM_CLASSES = 10


@dataclass(frozen=True)
class DataConfig:
    """Where the data lives and where it comes from."""

    data_dir: Path = DEFAULT_DATA_DIR
    source: str | None = None
    mirrors: tuple[str, ...] = MIRRORS
    timeout_seconds: float = 30.0
    retries: int = 2


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training run computes (logged as params)."""

    arch: str = "lstm"
    preset: str = "default"
    learning_rate: float = 0.001
    hidden_size: int = 128
    epochs: int = 10
    batch_size: int = 128
    seed: int = 0
    validation_fraction: float = 0.1
    optimizer: str = "adam"
    learning_rate_schedule: str = "constant"
    max_steps: int | None = None

    def __post_init__(self) -> None:
        check_choice("--arch", self.arch, ARCHITECTURES)
        check_choice("--preset", self.preset, PRESETS)
        check_choice("--learning-rate-schedule", self.learning_rate_schedule, SCHEDULES)
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise PipelineError(f"--learning-rate must be > 0 (got {self.learning_rate})")
        for option, value in (
            ("--hidden-size", self.hidden_size),
            ("--epochs", self.epochs),
            ("--batch-size", self.batch_size),
        ):
            if value < 1:
                raise PipelineError(f"{option} must be a positive integer (got {value})")
        if self.max_steps is not None and self.max_steps < 1:
            raise PipelineError(f"--max-steps must be a positive integer (got {self.max_steps})")
        if self.seed < 0:
            raise PipelineError(f"--seed must be >= 0 (got {self.seed})")
        if not 0 < self.validation_fraction < 1:
            raise PipelineError(
                f"--validation-fraction must be between 0 and 1, exclusive "
                f"(got {self.validation_fraction})"
            )

    def params(self) -> dict[str, object]:
        """The MLflow params of a run with this configuration (max_steps only where used)."""
        values = asdict(self)
        if values["max_steps"] is None:
            del values["max_steps"]
        return values


# The notebooks' settings ("seed") and the house's modern choices ("default"); see README.
PRESET_VALUES: dict[tuple[str, str], dict[str, object]] = {
    ("mlp", "seed"): dict(learning_rate=0.001, hidden_size=256, epochs=15, batch_size=100),
    ("lstm", "seed"): dict(
        learning_rate=0.001, hidden_size=128, epochs=1000, batch_size=128, max_steps=10_000
    ),
    ("mlp", "default"): dict(learning_rate=0.001, hidden_size=256, epochs=20, batch_size=128),
    ("lstm", "default"): dict(
        learning_rate=0.003,
        hidden_size=128,
        epochs=14,
        batch_size=64,
        learning_rate_schedule="cosine",
    ),  # fmt: skip
}


def check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise a one-line error when value is not one of choices."""
    if value not in choices:
        raise PipelineError(f"{option} must be one of {', '.join(choices)} (got {value!r})")


def train_config(arch: str, preset: str = "default", **overrides: object) -> TrainConfig:
    """The preset's values for arch, with every override that is not None applied."""
    check_choice("--arch", arch, ARCHITECTURES)
    check_choice("--preset", preset, PRESETS)
    values = dict(PRESET_VALUES[(arch, preset)])
    values.update({key: value for key, value in overrides.items() if value is not None})
    if "epochs" in overrides and overrides["epochs"] is not None and "max_steps" not in overrides:
        values.pop("max_steps", None)  # an explicit epoch count replaces a step budget
    return TrainConfig(arch=arch, preset=preset, **values)


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else the embedded SQLite store in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def experiment_name() -> str:
    """MLFLOW_EXPERIMENT_NAME when set, else the house experiment."""
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


SAMPLERS = ("tpe", "random")
PRUNERS = ("hyperband", "median", "none")
TUNE_ARCHITECTURES = ("mlp", "lstm", "both")
DEFAULT_OPTUNA_STORAGE = "sqlite:///optuna.db"
# Per-arch epoch ceilings: the MLP's default preset trains 20 epochs, the slower LSTM's 8.
MAX_EPOCHS = {"mlp": 20, "lstm": 10}


@dataclass(frozen=True)
class TuneConfig:
    """An Optuna search: budget, storage, sampler, pruner and the search ranges."""

    arch: str = "mlp"
    n_trials: int = 20
    timeout_seconds: float | None = None
    study_name: str | None = None
    storage: str = DEFAULT_OPTUNA_STORAGE
    sampler: str = "tpe"
    pruner: str = "hyperband"
    seed: int = 0
    learning_rate_range: tuple[float, float] = (1e-4, 1e-2)
    hidden_size_range: tuple[int, int] = (32, 512)
    epochs_range: tuple[int, int] | None = None  # None: 2 .. MAX_EPOCHS[arch]
    validation_fraction: float = 0.1
    retrain_best: bool = False
    heartbeat_seconds: int = 10

    def __post_init__(self) -> None:
        check_choice("--arch", self.arch, TUNE_ARCHITECTURES)
        check_choice("--sampler", self.sampler, SAMPLERS)
        check_choice("--pruner", self.pruner, PRUNERS)
        if self.n_trials < 1:
            raise PipelineError(f"--n-trials must be at least 1 (got {self.n_trials})")
        if self.timeout_seconds is not None and not self.timeout_seconds > 0:
            raise PipelineError(f"--timeout must be > 0 seconds (got {self.timeout_seconds})")
        if self.seed < 0:
            raise PipelineError(f"--seed must be >= 0 (got {self.seed})")
        if self.heartbeat_seconds < 1:
            raise PipelineError(f"--heartbeat must be >= 1 second (got {self.heartbeat_seconds})")
        if not self.storage or "://" not in self.storage:
            raise PipelineError(
                f"--storage {self.storage!r} is not a URL (e.g. sqlite:///optuna.db)"
            )
        ranges = [
            ("--learning-rate-range", self.learning_rate_range),
            ("--hidden-size-range", self.hidden_size_range),
        ]
        if self.epochs_range is not None:
            ranges.append(("--epochs-range", self.epochs_range))
        for option, (low, high) in ranges:
            if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
                raise PipelineError(f"{option} needs 0 < LOW < HIGH (got {low} {high})")
        if not 0 < self.validation_fraction < 1:
            raise PipelineError("--validation-fraction must be between 0 and 1, exclusive")

    def arches(self) -> tuple[str, ...]:
        return ARCHITECTURES if self.arch == "both" else (self.arch,)

    def study_for(self, arch: str) -> str:
        """The study name for arch (the given name gets an -arch suffix when tuning both)."""
        if self.study_name is None:
            return f"mnist-{arch}"
        return f"{self.study_name}-{arch}" if self.arch == "both" else self.study_name

    def epochs_for(self, arch: str) -> tuple[int, int]:
        return self.epochs_range or (2, MAX_EPOCHS[arch])
