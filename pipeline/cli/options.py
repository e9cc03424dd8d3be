"""The options several commands share, and how "not given" becomes the config's default."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

from pipeline import architectures
from pipeline import config as cfg
from pipeline.config import DataConfig

ARCHES = f"{', '.join(architectures.names())} or {cfg.ALL_ARCHITECTURES} (every architecture)"
TRAIN_ARCH_HELP = f"One of {', '.join(architectures.names())} (default: {cfg.DEFAULT_ARCH})."
ARCHES_HELP = f"{ARCHES} (default: {cfg.DEFAULT_ARCH})."
PRESET_VALUE = "(default: the preset's)"
PRESET_HELP = "default (modern choices) or seed (the notebook exactly)"
Preset = typer.Option(None, "--preset", help=f"{PRESET_HELP} (default: {cfg.DEFAULT_PRESET}).")
DataDir = typer.Option(
    None, "--data-dir", help=f"Where the MNIST cache lives (default: {cfg.DEFAULT_DATA_DIR})."
)
CheckpointDir = typer.Option(
    None,
    "--checkpoint-dir",
    help=f"Where per-run checkpoints are kept (default: {cfg.DEFAULT_CHECKPOINT_DIR}).",
)
Storage = typer.Option(
    None,
    "--storage",
    help="Optuna storage URL: sqlite:///FILE, postgresql://..., or journal:///FILE (a journal "
    f"file) (default: {cfg.DEFAULT_OPTUNA_STORAGE}).",
)

SystemMetrics = typer.Option(
    None,
    "--system-metrics/--no-system-metrics",
    help="Record CPU and memory use on each run (MLflow system metrics; default: "
    "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING, else off).",
)


def default_of(config: type, field: str) -> Any:
    """The default a config dataclass gives field: what "not given" means, for help texts."""
    return next(each.default for each in dataclasses.fields(config) if each.name == field)


def given(**options: Any) -> dict[str, Any]:
    """The options the user gave (not None), for a config dataclass to take."""
    return {name: value for name, value in options.items() if value is not None}


def data_dir_of(data_dir: Path | None) -> Path:
    return DataConfig(**given(data_dir=data_dir)).data_dir


def checkpoint_dir_of(checkpoint_dir: Path | None) -> Path:
    return checkpoint_dir or cfg.DEFAULT_CHECKPOINT_DIR
