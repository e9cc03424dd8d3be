"""The options commands share, declared once (`Annotated` types), and how "not given" becomes
the config's default.

Every option defaults to None ("not given") unless it is a plain switch; its help says the
default the config dataclass or the registry gives, read from the code.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline import architectures
from pipeline import config as cfg
from pipeline.config import DataConfig, TrainConfig


def default_of(config: type, field: str) -> Any:
    """The default a config dataclass gives field: what "not given" means, for help texts."""
    return next(each.default for each in dataclasses.fields(config) if each.name == field)


def given(**options: Any) -> dict[str, Any]:
    """The options the user gave (not None), for a config dataclass to take."""
    return {name: value for name, value in options.items() if value is not None}


def fields_given(config: type, values: dict[str, Any]) -> dict[str, Any]:
    """Of a command's parameters (its locals()), the config's fields the user gave: commands
    name their parameters like the fields they set."""
    names = {each.name for each in dataclasses.fields(config)}
    return given(**{name: value for name, value in values.items() if name in names})


def data_dir_of(data_dir: Path | None) -> Path:
    return DataConfig(**given(data_dir=data_dir)).data_dir


def checkpoint_dir_of(checkpoint_dir: Path | None) -> Path:
    return checkpoint_dir or cfg.DEFAULT_CHECKPOINT_DIR


def option(*names: str, help: str) -> Any:
    """An option that defaults to "not given" (None), for an `Annotated` declaration."""
    return typer.Option(*names, help=help)


ARCH_NAMES = ", ".join(architectures.names())
PRESET_VALUE = "(default: the preset's)"

Arch = Annotated[
    str | None, option("--arch", help=f"One of {ARCH_NAMES} (default: {cfg.DEFAULT_ARCH}).")
]
Arches = Annotated[
    str | None,
    option(
        "--arch",
        help=f"{ARCH_NAMES} or {cfg.ALL_ARCHITECTURES} (every architecture) "
        f"(default: {cfg.DEFAULT_ARCH}).",
    ),
]
Preset = Annotated[
    str | None,
    option(
        "--preset",
        help="default (modern choices) or seed "
        f"(the notebook exactly) (default: {cfg.DEFAULT_PRESET}).",
    ),
]
Seed = Annotated[
    int | None,
    option(
        "--seed",
        help="Seed of the validation split, initialisation and shuffling (and of a study's "
        f"sampler) (default: {default_of(TrainConfig, 'seed')}).",
    ),
]
ValidationFraction = Annotated[
    float | None,
    option(
        "--validation-fraction",
        help="Share of the training set held out for validation "
        f"(default: {default_of(TrainConfig, 'validation_fraction')}).",
    ),
]
DataDir = Annotated[
    Path | None,
    option("--data-dir", help=f"Where the MNIST cache lives (default: {cfg.DEFAULT_DATA_DIR})."),
]
CheckpointDir = Annotated[
    Path | None,
    option(
        "--checkpoint-dir",
        help=f"Where per-run checkpoints are kept (default: {cfg.DEFAULT_CHECKPOINT_DIR}).",
    ),
]
Storage = Annotated[
    str | None,
    option(
        "--storage",
        help="Optuna storage URL: sqlite:///FILE, postgresql://..., or journal:///FILE (a "
        f"journal file) (default: {cfg.DEFAULT_OPTUNA_STORAGE}).",
    ),
]
Source = Annotated[
    str | None,
    option(
        "--source",
        help="A folder, file:// or http(s):// URL holding the four IDX files (offline; "
        "default: the mirrors).",
    ),
]
ReportDir = Annotated[
    Path | None,
    option("--report-dir", help=f"Where the report goes (default: {cfg.DEFAULT_REPORT_DIR})."),
]
SystemMetrics = Annotated[
    bool | None,
    option(
        "--system-metrics/--no-system-metrics",
        help="Record CPU and memory use on each run (MLflow system metrics; default: "
        "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING, else off).",
    ),
]
