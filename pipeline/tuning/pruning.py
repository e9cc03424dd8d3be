"""Pruning: what a trial reports after each epoch, and the pruners that judge it."""

from __future__ import annotations

import math
from dataclasses import replace

import optuna

from pipeline import run_names, tracking
from pipeline.config import TrainConfig, train_config
from pipeline.tracking import names
from pipeline.tune_config import TuneConfig

PRUNE_MIN_PERCENT = 10  # Hyperband's first rung under a cosine schedule: a tenth of it
# The default pruner (successive halving that spares a trial within the validation noise of the
# promoted ones, TolerantHalving) gives its first verdict after this share of the study's
# longest schedule (epoch 5 of the MLP's 20): slow starters (low learning rates, large layers)
# trail early and win at full length. Which first rung and tolerance stop the configuration that
# ended best least often, at what share of the epochs, in unpruned studies replayed:
# bench/search_cases.py replay (the figures are in the README).
PRUNE_AFTER_SHARE = 0.25


class PruneOnValidation:
    """Reports each complete epoch's validation accuracy to Optuna and stops weak trials.

    A study's trials may differ in length. Under a constant learning rate, epoch k of a short
    trial trains exactly like epoch k of a long one, so values are reported at the epoch count.
    A cosine schedule stretches over each trial's own epochs, so there values are reported at the
    percentage of the trial's schedule done: two trials are compared at the same point of their
    schedules, not after the same epoch count. A study that searches the schedule reports every
    trial by percent, so that all its trials share one unit (see `by_percent`). Where a trial's
    objective is the best epoch of its curve, it reports its best accuracy so far (best_so_far):
    what it would score if stopped now.

    A pruned trial's run ends with the epochs it trained as its `epochs` param and, at its last
    epoch's step, the validation metrics of the epoch its value is of, so that the run's latest
    metrics are its value's.
    """

    def __init__(
        self,
        trial: optuna.Trial,
        run: tracking.Run,
        config: TrainConfig,
        percent: bool,
        best_so_far: bool = False,
        steps_per_epoch: int = 1,
    ) -> None:
        self.trial, self.run, self.config, self.last = trial, run, config, 0.0
        self.percent, self.reported, self.best_so_far = percent, 0, best_so_far
        self.steps_per_epoch = steps_per_epoch
        self.curve: list[float] = []  # validation accuracy after each epoch
        self.losses: list[float] = []  # and loss

    def __call__(self, epochs_done: int, logs: dict) -> None:
        self.last = float(logs[names.VAL_ACCURACY])
        self.curve.append(self.last)
        self.losses.append(float(logs[names.VAL_LOSS]))
        step = report_step(epochs_done, self.config.epochs, self.percent)
        if step == self.reported:  # over 100 epochs, several share one percent
            return
        self.reported = step
        self.trial.report(max(self.curve) if self.best_so_far else self.last, step)
        if self.trial.should_prune():
            self.trial.set_user_attr(names.PRUNED_AT_ATTR, epochs_done)
            self.run.set_tags(
                {
                    names.PRUNED: "true",
                    names.PRUNED_AT_EPOCH: epochs_done,
                    names.OPTUNA_TRIAL_STATE: "PRUNED",
                }
            )
            self._settle(epochs_done)
            stopped = replace(self.config, epochs=epochs_done).differences()
            self.run.rename(
                run_names.trial(self.trial.study.study_name, self.trial.number, stopped, True)
            )
            raise optuna.TrialPruned(
                f"pruned at epoch {epochs_done} of {self.config.epochs} "
                f"(val_accuracy {self.last:.4f})"
            )

    def _settle(self, epochs_done: int) -> None:
        """The run's epochs param and latest validation metrics: the pruned trial's value's."""
        self.run.log_params({"epochs": epochs_done})
        chosen = epochs_done - 1
        if self.best_so_far:  # the latest best, as the trial reported it
            chosen = max(range(epochs_done), key=lambda i: (self.curve[i], i))
        self.run.log_metrics(
            {names.VAL_ACCURACY: self.curve[chosen], names.VAL_LOSS: self.losses[chosen]},
            step=epochs_done * self.steps_per_epoch - 1,
        )


class TolerantHalving(optuna.pruners.BasePruner):
    """Successive halving that stops a trial only when it is clearly behind.

    At each rung (`first`, then `factor` times further each time) a trial is compared with every
    trial that reached that rung, each by its value at its first report there: it goes on when it
    is among the top 1/`factor` of them, or behind their cutoff by no more than the noise of an
    accuracy measured on `images` validation images (`errors` standard errors at the cutoff, one
    by default): a trial within it of the promoted ones is not known to be worse, and a slow
    starter often is one. (Optuna's SuccessiveHalvingPruner would stop those too.)
    """

    def __init__(self, first: int, factor: int, images: int, errors: float = 1.0) -> None:
        self.first, self.factor, self.images, self.errors = first, factor, images, errors

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.first:
            return False
        rung = self.first
        while rung * self.factor <= step:
            rung *= self.factor
        if min(s for s in trial.intermediate_values if s >= rung) != step:
            return False  # judged at this rung already
        values = [
            value
            for other in study.get_trials(deepcopy=False)
            if (value := _at_rung(other, rung)) is not None
        ]
        if len(values) < 2:
            return False  # nothing to compare with
        cutoff = sorted(values, reverse=True)[max(len(values) // self.factor - 1, 0)]
        noise = math.sqrt(max(cutoff * (1 - cutoff), 0.0) / max(self.images, 1))
        return trial.intermediate_values[step] < cutoff - self.errors * noise


def _at_rung(trial: optuna.trial.FrozenTrial, rung: int) -> float | None:
    """A trial's value at its first report at or past the rung (None: it never got there)."""
    reached = [step for step in trial.intermediate_values if step >= rung]
    return trial.intermediate_values[min(reached)] if reached else None


def by_percent(tune: TuneConfig, arch: str) -> bool:
    """Whether a study's trials report at the percent of their schedule done (else at epoch
    counts): when the study's start preset decays its learning rate, or the schedule is
    searched (--search wide), so that every trial of a study reports in one unit."""
    schedule = train_config(arch, tune.start_from).learning_rate_schedule
    return schedule != "constant" or tune.search == "wide"


def report_step(epochs_done: int, epochs: int, percent: bool) -> int:
    """The step a trial reports at: epochs done, or how much of its schedule is done in percent."""
    return max(1, round(100 * epochs_done / epochs)) if percent else epochs_done


def first_rung(tune: TuneConfig, arch: str) -> int:
    """The report step of the default pruner's first verdict: PRUNE_AFTER_SHARE of the longest
    schedule, in the unit the arch's trials report in (epochs, or percent of the schedule)."""
    last = 100 if by_percent(tune, arch) else tune.epochs_for(arch)[1]
    return max(1, round(PRUNE_AFTER_SHARE * last))


def pruner(tune: TuneConfig, arch: str, validation_images: int = 0) -> optuna.pruners.BasePruner:
    """Pruners over the unit the arch's trials report in (see PruneOnValidation); the default's
    tolerance is the noise of an accuracy on validation_images (the first fold's)."""
    if tune.pruner == "none":
        return optuna.pruners.NopPruner()
    if tune.pruner == "halving":  # a third (and the close) go on at each rung: 5, 15, 45 epochs
        return TolerantHalving(first_rung(tune, arch), 3, validation_images)
    if by_percent(tune, arch):
        first, last = PRUNE_MIN_PERCENT, 100
    else:
        first, last = 1, tune.epochs_for(arch)[1]
    if tune.pruner == "median":  # no verdict before a third of the longest schedule
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=last // 3)
    return optuna.pruners.HyperbandPruner(
        min_resource=first, max_resource=last, reduction_factor=3
    )
