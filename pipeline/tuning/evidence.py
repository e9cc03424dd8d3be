"""What a trial's fits leave behind to judge it by: each fold's validation curve and, for the
epoch counts the objective may name, which validation images each fold's model got right.

With one validation split (the default) a trial fits once. With --folds K it fits K times, one
per fold of a seeded, stratified K-fold split of the training set: its curve is the mean of the
folds' curves, and its per-image answers cover every training image once, in the same order for
every trial of the study, so that trials are compared image by image on K times more images.
Optuna prunes on the first fold alone: a weak trial costs one fit, not K.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline import data, fitting, tracking, train_records
from pipeline.config import TrainConfig
from pipeline.errors import PipelineError
from pipeline.tracking import names
from pipeline.tuning.pruning import PruneOnValidation


class FoldRecord:
    """One fit's validation accuracy after each epoch, and the per-image answers of its model
    after each epoch count in `kept`."""

    def __init__(self, splits: data.Splits, kept: range) -> None:
        self.x, self.y, self.kept = splits.x_val.astype(np.float32), splits.y_val, kept
        self.batches = range(0, len(self.y), 1024)
        self.curve: list[float] = []
        self.losses: list[float] = []  # validation loss after each epoch
        self.answers: dict[int, np.ndarray] = {}

    def on_epoch(self, epochs_done: int, logs: dict) -> None:
        self.curve.append(float(logs[names.VAL_ACCURACY]))
        self.losses.append(float(logs[names.VAL_LOSS]))

    def on_epoch_model(self, model, sink, epochs_done: int) -> None:
        if epochs_done in self.kept:
            # A direct call, not model.predict: predict traces a new function for every trial's
            # model, and TensorFlow warns about retracing on the user's terminal.
            scores = np.concatenate(
                [np.asarray(model(self.x[i : i + 1024], training=False)) for i in self.batches]
            )
            self.answers[epochs_done] = scores.argmax(axis=1) == self.y


@dataclass
class Folds:
    """A trial's fits: the mean validation curve and each fold's answers."""

    records: list[FoldRecord] = field(default_factory=list)
    last_step: int = 0  # the step of the last fold's last epoch end (its epoch metrics')

    @property
    def curve(self) -> list[float]:
        """Validation accuracy after each epoch, the mean over folds."""
        return [float(value) for value in np.mean([r.curve for r in self.records], axis=0)]

    def loss(self, epochs: int) -> float:
        """Validation loss after `epochs` epochs, the mean over folds."""
        return float(np.mean([record.losses[epochs - 1] for record in self.records]))

    def accuracies(self, epochs: int) -> list[float]:
        """Each fold's validation accuracy after `epochs` epochs."""
        return [record.curve[epochs - 1] for record in self.records]

    def correct(self, epochs: int) -> np.ndarray:
        """Which validation images the models after `epochs` epochs got right, fold by fold."""
        return np.concatenate([record.answers[epochs] for record in self.records])


def _also(first: Callable[[int, dict], None], then: Callable[[int, dict], None]):
    """An epoch hook calling first, then `then` (the pruner, which may stop the trial)."""

    def both(epochs_done: int, logs: dict) -> None:
        first(epochs_done, logs)
        then(epochs_done, logs)

    return both


def fit_folds(
    config: TrainConfig,
    splits: list[data.Splits],
    run: tracking.Run,
    data_dir: Path,
    pruning: PruneOnValidation,
    kept: range,
) -> Folds:
    """Fit config once per split inside the trial's run (pruning judging the first); each fold's
    step metrics follow the previous fold's on the run's charts."""
    folds, step = Folds(), 0
    for index, fold in enumerate(splits):
        train_records.log_inputs(fold, data_dir)
        record = FoldRecord(fold, kept)
        on_epoch = record.on_epoch if index else _also(record.on_epoch, pruning)
        fitted = fitting.fit(
            config,
            fold,
            run.run_id,
            on_epoch=on_epoch,
            on_epoch_model=record.on_epoch_model,
            first_step=step,
        )
        if fitted.metrics.non_finite_step is not None:
            raise PipelineError(f"loss became NaN at step {fitted.metrics.non_finite_step}")
        step = fitted.metrics.sink.next_step
        folds.records.append(record)
    folds.last_step = step - 1
    return folds
