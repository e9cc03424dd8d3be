"""The configs of a study and of the main job (frozen, validated), and the search space they
share: the defaults of `tune` and `main`, beside config.py's for the single stages."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from pipeline import architectures
from pipeline.config import (
    DEFAULT_ARCH,
    DEFAULT_CHECKPOINT_DIR,
    DEFAULT_OPTUNA_STORAGE,
    DEFAULT_PRESET,
    DEFAULT_REPORT_DIR,
    PRUNERS,
    SAMPLERS,
    TRIALS_PER_PROCESS,
    DataConfig,
    arch_choices,
    architecture,
    check_choice,
    check_fraction,
    check_seed,
)
from pipeline.errors import PipelineError

# The search space: the learning rates every architecture shares; hidden sizes and epochs come
# from the registry. Wide enough for a full-size training set's bests (bench/search_cases.py); a
# study whose best lies at an edge widens it anyway (see tuning/ranges.py), up to range_limits.
LEARNING_RATE_RANGE = (3e-5, 1e-2)
RANGE_LIMITS = {
    "learning_rate": (1e-6, 1.0),
    "epochs": (2, 100),  # 2: the earliest epoch count a curve chooses (early_stopping)
}
HIDDEN_SIZE_FLOOR = 8
EDGE_SHARE = 0.05  # a best this close to an edge, in shares of the range's (log) width, is at it
WIDEN_SHARE = 0.5  # a range grows past such an edge by this share of its (log) width
MAX_FOLDS = 10
# --search wide also searches these (the default search keeps the preset's).
SEARCHES = ("standard", "wide")
BATCH_SIZES = (32, 64, 128, 256)


@dataclass(frozen=True)
class TuneConfig:
    """An Optuna search: budget, storage, sampler, pruner and the search ranges."""

    arch: str = DEFAULT_ARCH
    n_trials: int = 20
    timeout_seconds: float | None = None
    study_name: str | None = None
    storage: str = DEFAULT_OPTUNA_STORAGE
    sampler: str = "tpe"
    pruner: str = "halving"
    seed: int = 0
    learning_rate_range: tuple[float, float] = LEARNING_RATE_RANGE
    hidden_size_range: tuple[int, int] | None = None  # None: the registry's for each arch
    epochs_range: tuple[int, int] | None = None  # None: the registry's range for each arch
    search: str = "standard"
    start_from: str = DEFAULT_PRESET  # the preset trials build on, trial 0 when in the ranges
    folds: int = 1  # k-fold cross-validation of every trial (1: one validation split)
    validation_fraction: float = 0.1
    retrain_best: bool = False
    widen: bool = True  # a range grows past an edge where the study's best lies
    heartbeat_seconds: int = 10
    trials_per_process: int = TRIALS_PER_PROCESS
    data_name: str = "mnist"  # the default study names' first part (see data.data_name)

    def __post_init__(self) -> None:
        arch_choices(self.arch)
        check_choice("--sampler", self.sampler, SAMPLERS)
        check_choice("--pruner", self.pruner, PRUNERS)
        check_choice("--search", self.search, SEARCHES)
        check_choice("--start-from", self.start_from, architectures.preset_names())
        if not 1 <= self.folds <= MAX_FOLDS:
            raise PipelineError(f"--folds must be 1 to {MAX_FOLDS} (got {self.folds})")
        if self.n_trials < 1:
            raise PipelineError(f"--n-trials must be at least 1 (got {self.n_trials})")
        if self.timeout_seconds is not None and not self.timeout_seconds > 0:
            raise PipelineError(f"--timeout must be > 0 seconds (got {self.timeout_seconds})")
        check_seed(self.seed)
        if self.trials_per_process < 1:
            raise PipelineError(
                f"--trials-per-process must be at least 1 (got {self.trials_per_process})"
            )
        if self.heartbeat_seconds < 1:
            raise PipelineError(f"--heartbeat must be >= 1 second (got {self.heartbeat_seconds})")
        if not self.storage or "://" not in self.storage:
            raise PipelineError(
                f"--storage {self.storage!r} is not a URL (e.g. {DEFAULT_OPTUNA_STORAGE})"
            )
        ranges = [
            ("--learning-rate-range", self.learning_rate_range),
            ("--hidden-size-range", self.hidden_size_range),
            ("--epochs-range", self.epochs_range),
        ]
        for option, (low, high) in ((o, r) for o, r in ranges if r is not None):
            if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
                raise PipelineError(f"{option} needs 0 < LOW < HIGH (got {low} {high})")
        check_fraction(self.validation_fraction)

    def arches(self) -> tuple[str, ...]:
        return arch_choices(self.arch)

    def study_for(self, arch: str) -> str:
        """The study name for arch (the given name gets an -arch suffix when tuning several)."""
        if self.study_name is None:
            return f"{self.data_name}-{arch}"
        return f"{self.study_name}-{arch}" if len(self.arches()) > 1 else self.study_name

    def epochs_for(self, arch: str) -> tuple[int, int]:
        return self.epochs_range or architecture(arch).tuning_epochs()

    def hidden_sizes_for(self, arch: str) -> tuple[int, int]:
        return self.hidden_size_range or architecture(arch).hidden_sizes


def range_limits(arch: str) -> dict[str, tuple[float, float]]:
    """How far an arch's ranges may widen, per searched param."""
    ceiling = architecture(arch).hidden_size_limit
    return {**RANGE_LIMITS, "hidden_size": (HIDDEN_SIZE_FLOOR, ceiling)}


@dataclass(frozen=True)
class MainConfig:
    """What the main job runs."""

    data: DataConfig = DataConfig()
    preset: str = DEFAULT_PRESET
    arch: str = DEFAULT_ARCH
    tune: bool = False
    n_trials: int = 10
    storage: str = DEFAULT_OPTUNA_STORAGE
    checkpoint_dir: Path = DEFAULT_CHECKPOINT_DIR
    report_dir: Path = DEFAULT_REPORT_DIR

    def __post_init__(self) -> None:
        check_choice("--preset", self.preset, architectures.preset_names())
        arch_choices(self.arch)
        if self.n_trials < 1:
            raise PipelineError(f"--n-trials must be at least 1 (got {self.n_trials})")

    def arches(self) -> tuple[str, ...]:
        return arch_choices(self.arch)
