"""Optuna's own plots of a study (PNGs) and its trials as a table, for the study's MLflow run."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import optuna

from pipeline import figures
from pipeline.tracking import names

PLOTS = ("optimization_history", "param_importances", "parallel_coordinate", "intermediate_values")


def write_plots(study: optuna.Study, folder: Path) -> list[str]:
    """Optuna's own plots as PNGs in folder; a plot the study cannot make yet is left out."""
    # Imported here: matplotlib's import costs every command that merely imports this package.
    from optuna.visualization import matplotlib as optuna_matplotlib

    written = []
    for name in PLOTS:
        plot = getattr(optuna_matplotlib, f"plot_{name}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue  # e.g. importances need two finished trials
        figure = np.atleast_1d(axes).ravel()[0].figure
        figure.set_size_inches(7, 4.5)
        figure.savefig(folder / f"{name}.png", dpi=80, bbox_inches="tight")
        figures.close(figure)
        written.append(name)
    return written


def trials_table(study: optuna.Study):
    """The study's trials as a table for people (a pandas DataFrame): without the per-image
    record and the process identity, which the study keeps for the verdict and the workers."""
    hidden = [
        f"system_attrs_{names.VAL_CORRECT_ATTR}",
        f"system_attrs_{names.VAL_CORRECT_EPOCHS_ATTR}",
        f"user_attrs_{names.OWNER_ATTR}",
    ]
    return study.trials_dataframe().drop(columns=hidden, errors="ignore")
