"""Matplotlib figures shared by the stages (headless backend, small PNGs)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < window or window < 2:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def learning_curves(curves: dict[str, dict[str, list[tuple[int, float]]]]):
    """Loss and accuracy against step for one or more runs: {label: {metric: [(step, value)]}},
    metrics batch_loss / batch_accuracy (per step, smoothed) and val_loss / val_accuracy."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=80)
    for label, metrics in curves.items():
        for axis, kind in zip(axes, ("loss", "accuracy"), strict=True):
            train = np.array(metrics.get(f"batch_{kind}", []), dtype=float).reshape(-1, 2)
            if len(train):
                window = max(1, len(train) // 100)
                axis.plot(
                    train[window - 1 :, 0] if window > 1 else train[:, 0],
                    _smooth(train[:, 1], window),
                    alpha=0.6,
                    label=f"{label} train (per batch, smoothed)",
                )
            val = np.array(metrics.get(f"val_{kind}", []), dtype=float).reshape(-1, 2)
            if len(val):
                axis.plot(val[:, 0], val[:, 1], marker="o", markersize=3, label=f"{label} val")
    for axis, kind in zip(axes, ("loss", "accuracy"), strict=True):
        axis.set_xlabel("step (global batch index)")
        axis.set_ylabel(kind)
        axis.grid(alpha=0.3)
        if axis.lines:  # an empty report has no curves to name
            axis.legend(fontsize=7)
    axes[0].set_yscale("log")
    figure.tight_layout()
    return figure


def close(figure) -> None:
    plt.close(figure)


def confusion_matrix(matrix: np.ndarray):
    """A 10x10 heat map with counts in the cells."""
    figure, axis = plt.subplots(figsize=(5.5, 5), dpi=80)
    axis.imshow(np.log1p(matrix), cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        if count:
            colour = "white" if row == col else "black"
            axis.text(col, row, str(count), ha="center", va="center", fontsize=7, color=colour)
    axis.set_xticks(range(10))
    axis.set_yticks(range(10))
    axis.set_xlabel("predicted digit")
    axis.set_ylabel("true digit")
    figure.tight_layout()
    return figure


def digit_grid(images, labels, predicted, confidence, columns: int = 4):
    """Images with 'true -> predicted (confidence)' captions."""
    count = max(len(images), 1)
    rows = (count + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.6, rows * 1.8), dpi=80)
    for index, axis in enumerate(np.atleast_1d(axes).ravel()):
        axis.axis("off")
        if index < len(images):
            axis.imshow(images[index], cmap="gray_r")
            axis.set_title(
                f"{labels[index]}→{predicted[index]} ({confidence[index]:.2f})", fontsize=8
            )
    figure.tight_layout()
    return figure
