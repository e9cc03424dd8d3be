"""Early stopping: the epoch count a run's validation curve chooses, and the weights after it.

One rule for the train stage and a study's trials, so that a study's preset trial is the model
`train` makes: train up to the configured epochs, keep the model after the epoch (from
FIRST_EPOCH on) whose validation accuracy was highest, the latest on a tie (so a plateau leaves
a run as trained).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline import data

FIRST_EPOCH = 2  # the earliest epoch count a curve may choose
BEST_FILE = "best_weights.npz"  # in a run's checkpoint folder, for --resume


def best_epoch(curve: list[float], epochs: tuple[int, int]) -> int:
    """The epoch count in the range (low, high), 1-based, after which the curve was highest; on
    a tie the latest. A curve shorter than low (a run of fewer epochs) chooses its last epoch."""
    low, high = epochs
    counted = range(min(low, len(curve)), min(high, len(curve)) + 1)
    return max(counted, key=lambda epoch: (curve[epoch - 1], epoch))


class BestEpoch:
    """Follows a fit's epochs and keeps the weights after the best one (see the module).

    Its progress lives in the fit's checkpoint state (best_epoch, best_step, best_accuracy)
    and, with a checkpoint folder, the best weights in BEST_FILE beside it, so a resumed run
    chooses among all its epochs."""

    def __init__(self, state: dict, folder: Path | None) -> None:
        self.state, self.folder = state, folder
        self.weights: list[np.ndarray] | None = None
        self.metrics: list[Any] = []  # the best epoch's epoch metrics, as the sink had them
        if state.get("best_epoch") and folder is not None and (folder / BEST_FILE).is_file():
            with np.load(folder / BEST_FILE) as arrays:
                self.weights = [arrays[f"w{i}"] for i in range(len(arrays.files))]

    @property
    def epoch(self) -> int | None:
        return self.state.get("best_epoch")

    @property
    def step(self) -> int | None:
        return self.state.get("best_step")

    def see(self, model, epochs_done: int, accuracy: float, step: int, metrics: list) -> None:
        """After a complete epoch: keep the model if it is the best so far (an epoch before
        FIRST_EPOCH only while no later one is kept)."""
        kept = self.epoch
        if epochs_done < FIRST_EPOCH:
            better = kept is None
        else:
            best = self.state.get("best_accuracy")
            better = kept is None or kept < FIRST_EPOCH or best is None or accuracy >= best
        if not better:
            return
        self.state.update(best_epoch=epochs_done, best_step=step, best_accuracy=accuracy)
        self.weights, self.metrics = [np.array(w) for w in model.get_weights()], list(metrics)
        if self.folder is not None:
            arrays = {f"w{i}": weights for i, weights in enumerate(self.weights)}
            data.atomic_write(self.folder / BEST_FILE, lambda path: _save(path, arrays))

    def restore(self, model) -> None:
        """Give the model the best epoch's weights."""
        if self.weights is not None:
            model.set_weights(self.weights)


def _save(path: Path, arrays: dict) -> None:
    with path.open("wb") as handle:
        np.savez(handle, **arrays)
