"""Frozen, validated config dataclasses, default paths and store URIs: the one home for defaults.

CLI options default to "not given"; the dataclasses and the registry decide.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from pipeline import architectures, run_names
from pipeline.architectures import Architecture
from pipeline.errors import PipelineError

DEFAULT_DATA_DIR = Path("data/mnist")
DEFAULT_CHECKPOINT_DIR = Path("checkpoints")
DEFAULT_REPORT_DIR = Path("reports")
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "mnist"
DEFAULT_OPTUNA_STORAGE = "sqlite:///optuna.db"
DEFAULT_UI_HOST = "127.0.0.1"  # loopback: the UI has no authentication
DEFAULT_UI_PORT = 5000  # MLflow's own
# What a served model takes and gives (model descriptions and the README say it).
SERVING_CONTRACT = (
    "Input: a batch of 28x28 images as 0-255 pixel intensities (uint8, float32 or float64; not "
    "scaled to 0-1). Output: the 10 digit probabilities."
)
MODEL_URI_FORMS = (
    "runs:/RUN_ID/MODEL_NAME, models:/MODEL_ID, models:/NAME@ALIAS or models:/NAME/VERSION"
)

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

ALL_ARCHITECTURES = "both"  # --arch for the stages that run every architecture
SCHEDULES = ("constant", "cosine")
SAMPLERS = ("tpe", "random")
PRUNERS = ("halving", "hyperband", "median", "none")
OPTIMIZER = "adam"  # what models.build_optimizer builds; logged as the `optimizer` param
IMAGE_SIDE = 28
NUM_CLASSES = 10
MAX_SEED = 2**32 - 1
# One default arch for every stage: the MLP trains in seconds, so a first command answers fast
# (`make run` asks for both archs; --arch lstm or both for the rest).
DEFAULT_ARCH = "mlp"
DEFAULT_PRESET = "default"
# Trials one process runs before a fresh one takes over: Keras keeps part of every fit
# (bench/tune_memory.py).
TRIALS_PER_PROCESS = 10
# Heartbeats a trial's worker may miss before the study takes it for dead (Optuna's grace).
HEARTBEAT_GRACE_BEATS = 3
# A run is stale after this many of its own heartbeat intervals without a beat (`reap`).
MISSED_BEATS = 4


def check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise a one-line error when value is not one of choices."""
    if value not in choices:
        raise PipelineError(f"{option} must be one of {', '.join(choices)} (got {value!r})")


def architecture(name: str) -> Architecture:
    """The registry entry of an architecture, or a one-line error naming the choices."""
    check_choice("--arch", name, architectures.names())
    return architectures.REGISTRY[name]


def arch_choices(name: str) -> tuple[str, ...]:
    """The architectures an --arch of mlp, lstm or both stands for."""
    check_choice("--arch", name, (*architectures.names(), ALL_ARCHITECTURES))
    return architectures.names() if name == ALL_ARCHITECTURES else (name,)


def check_seed(seed: int) -> None:
    if not 0 <= seed <= MAX_SEED:
        raise PipelineError(f"--seed must be between 0 and {MAX_SEED} (got {seed})")


def check_fraction(fraction: float) -> None:
    if not 0 < fraction < 1:
        raise PipelineError(
            f"--validation-fraction must be between 0 and 1, exclusive (got {fraction})"
        )


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
    """Everything that decides what a training run computes (logged as params).

    The preset-dependent values have no defaults here: `train_config` takes them from the
    registry, so each preset is written down once.
    """

    arch: str
    preset: str
    learning_rate: float
    hidden_size: int
    epochs: int
    batch_size: int
    seed: int = 0
    validation_fraction: float = 0.1
    learning_rate_schedule: str = "constant"
    max_steps: int | None = None
    # Keep the model after the epoch of best validation accuracy (pipeline.early_stopping),
    # `epochs` the ceiling; train_config turns it on wherever the schedule allows it.
    early_stopping: bool = False

    def __post_init__(self) -> None:
        check_choice("--arch", self.arch, architectures.names())
        check_choice("--preset", self.preset, architectures.preset_names())
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
        check_seed(self.seed)
        check_fraction(self.validation_fraction)
        if self.early_stopping and not stoppable(self.learning_rate_schedule, self.max_steps):
            raise PipelineError(
                "--early-stopping needs a constant learning rate and no --max-steps (a "
                "decaying schedule or a step budget ties the model to its length)"
            )

    def params(self) -> dict[str, object]:
        """The MLflow params of a run with this configuration (max_steps only where used)."""
        values = asdict(self)
        if values["max_steps"] is None:
            del values["max_steps"]
        return {**values, "optimizer": OPTIMIZER}

    def differences(self) -> list[str]:
        """Each value that differs from the preset's, abbreviated (lr3e-3, h512, cosine)."""
        preset = train_config(self.arch, self.preset)
        parts = []
        for field in fields(self):
            value = getattr(self, field.name)
            shown = field.name in run_names.ABBREVIATIONS and value is not None  # no step budget
            if shown and value != getattr(preset, field.name):
                parts.append(run_names.ABBREVIATIONS[field.name] + run_names.compact(value))
        return parts

    def name(self, label: str | None = None) -> str:
        """What the run is, for people: arch, preset (or label, say "tuned") and what differs
        from the preset (for example mlp-default-lr3e-3-h512)."""
        return "-".join([self.arch, label or self.preset, *self.differences()])

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TrainConfig:
        """The config a run's params (or a checkpoint's state) describe."""
        names = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in params.items() if key in names})


def train_config(
    arch: str | None = None, preset: str | None = None, **overrides: Any
) -> TrainConfig:
    """The preset's values for arch, with every override that is not None applied.

    An explicit epoch count replaces a preset's step budget, unless a step budget is given too.
    Early stopping is on unless said otherwise, where the schedule allows it (see stoppable).
    """
    arch = arch or DEFAULT_ARCH
    preset = preset or DEFAULT_PRESET
    check_choice("--preset", preset, architectures.preset_names())
    values = dict(architecture(arch).presets[preset])
    given = {key: value for key, value in overrides.items() if value is not None}
    if "epochs" in given and "max_steps" not in given:
        values.pop("max_steps", None)
    values = {**values, **given}
    if "early_stopping" not in values:
        schedule = values.get("learning_rate_schedule", "constant")
        values["early_stopping"] = stoppable(schedule, values.get("max_steps"))
    return TrainConfig(arch=arch, preset=preset, **values)


def stoppable(schedule: str, max_steps: int | None) -> bool:
    """Whether a run may stop early: at a constant learning rate with no step budget, the
    model after epoch k of a long run is the model of a k-epoch run."""
    return schedule == "constant" and max_steps is None


PRESET_FIELDS = (  # what makes a model a preset's: its hyperparameters, not its seed
    "learning_rate",
    "hidden_size",
    "epochs",
    "batch_size",
    "learning_rate_schedule",
    "max_steps",
    "early_stopping",
)


def is_preset_run(params: dict[str, str]) -> bool:
    """Whether a train run's params (MLflow's strings) hold its preset's own value of every
    hyperparameter (the seed and validation share may differ)."""
    try:
        preset = train_config(params["arch"], params["preset"])
    except (KeyError, PipelineError, TypeError):
        return False
    for field in PRESET_FIELDS:
        value = getattr(preset, field)
        if params.get(field) != (None if value is None else str(value)):
            return False
    return True


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(option: str, text: str) -> float:
    """Seconds in '90', '90s', '30m', '2h' or '1d'; a one-line error otherwise."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in DURATION_UNITS else (text, "s")
    try:
        seconds = float(number) * DURATION_UNITS[unit]
    except ValueError:
        seconds = float("nan")
    if not (math.isfinite(seconds) and seconds > 0):
        raise PipelineError(f"{option} must be a duration like 90s, 30m, 2h or 1d (got {text!r})")
    return seconds


@dataclass(frozen=True)
class ReapConfig:
    """Which RUNNING runs `pipeline reap` ends: those whose heartbeat stopped (after
    stale_after seconds, else four of their own intervals) and, with include_unbeating, those
    that never beat and started longer ago than older_than."""

    stale_after: float | None = None
    include_unbeating: bool = False
    older_than: str | None = None

    def __post_init__(self) -> None:
        if self.stale_after is not None and not self.stale_after > 0:
            raise PipelineError(f"--stale-after must be > 0 seconds (got {self.stale_after})")
        if self.include_unbeating != (self.older_than is not None):
            raise PipelineError("--include-unbeating and --older-than DURATION go together")
        self.unbeating_age()  # a malformed duration fails here

    def unbeating_age(self) -> float | None:
        """Seconds after which a run that never beat is reaped (None: never)."""
        return parse_duration("--older-than", self.older_than) if self.older_than else None


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else the embedded SQLite store in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def experiment_name() -> str:
    """MLFLOW_EXPERIMENT_NAME when set, else the house experiment."""
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
