"""What a study found, in numbers and words: its best trial against its preset trial on the same
validation images (pipeline.paired), and how much of it the pruner cut short."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import optuna

from pipeline import paired
from pipeline.errors import PipelineError
from pipeline.tracking import names
from pipeline.tuning.search import trial_params

COMPLETE = optuna.trial.TrialState.COMPLETE
PRUNED = optuna.trial.TrialState.PRUNED


@dataclass(frozen=True)
class Verdict:
    """A study's claim: the comparison (None when none could be made) and its sentence."""

    comparison: paired.Comparison | None
    sentence: str
    baseline: optuna.trial.FrozenTrial | None  # the preset trial
    best: optuna.trial.FrozenTrial | None
    apparent: paired.Comparison | None = None  # the same, as if the best had not been chosen

    @property
    def significant(self) -> bool:
        return self.comparison is not None and self.comparison.significant


def preset_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The trial that ran the study's start preset: of the trials enqueued with it (the first,
    a retry of one whose worker died, one queued again after it failed), the latest that
    completed, else the latest (None: the ranges excluded the preset, so none was)."""
    presets = [t for t in study.get_trials(deepcopy=False) if names.PRESET in t.user_attrs]
    complete = [trial for trial in presets if trial.state == COMPLETE]
    return (complete or presets or [None])[-1]


def _describe(trial: optuna.trial.FrozenTrial) -> str:
    params = ", ".join(
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in trial_params(trial).items()
    )
    return f"trial {trial.number} ({params})"


def _baseline_words(baseline: optuna.trial.FrozenTrial, start_from: str) -> str:
    """'trial 0 (the default preset, 7 of 20 epochs by its validation curve)'."""
    words = f"the {start_from} preset"
    chosen, trained = (
        baseline.user_attrs.get(names.EPOCHS_ATTR),
        baseline.user_attrs.get(names.TRAINED_ATTR),
    )
    if chosen is not None and trained is not None:
        words += f", {chosen} of {trained} epochs by its validation curve"
    return f"trial {baseline.number} ({words})"


def judge(study: optuna.Study, start_from: str) -> Verdict:
    """The best complete trial against the preset trial, on the same validation images, its
    p-value and interval adjusted for having been chosen among the complete trials."""
    complete = study.get_trials(deepcopy=False, states=(COMPLETE,))
    best = study.best_trial if complete else None
    baseline = preset_trial(study)
    if baseline is None:
        return Verdict(
            None,
            f"no preset trial ran (the ranges exclude the {start_from} preset), so there is no "
            "baseline to compare the best with",
            None,
            best,
        )
    who = _baseline_words(baseline, start_from)
    if baseline.state != COMPLETE or best is None:
        state = baseline.state.name.lower()
        return Verdict(None, f"{who} ended {state}: no paired comparison", baseline, best)
    if (
        names.VAL_CORRECT_ATTR not in best.system_attrs
        or names.VAL_CORRECT_ATTR not in baseline.system_attrs
    ):
        return Verdict(
            None,
            "the trials hold no per-image results (an older version ran them): no paired "
            "comparison",
            baseline,
            best,
        )
    try:
        if best.number == baseline.number:
            answers = _answers(best)
            comparison = paired.compare(answers, answers)
            return Verdict(
                comparison, f"no configuration beat {who}: it is the best", baseline, best
            )
        return _after_selection(best, baseline, complete, who)
    except PipelineError as damaged:  # refused, never read as answers
        return Verdict(None, f"{damaged}: no paired comparison", baseline, best)


def _answers(trial: optuna.trial.FrozenTrial) -> np.ndarray:
    """A trial's per-image record; a damaged one is a PipelineError naming the trial."""
    try:
        return paired.unpack(trial.system_attrs[names.VAL_CORRECT_ATTR])
    except PipelineError as damaged:
        raise PipelineError(
            f"trial {trial.number}'s per-image record is damaged ({damaged})"
        ) from None


def _other_epochs(trial: optuna.trial.FrozenTrial) -> list[np.ndarray]:
    """A trial's per-image records after the other epoch counts its curve chose among (none
    when its epochs were not chosen by its curve); a damaged one is a PipelineError."""
    records = trial.system_attrs.get(names.VAL_CORRECT_EPOCHS_ATTR) or {}
    try:
        return [paired.unpack(text) for _, text in sorted(records.items())]
    except PipelineError as damaged:
        raise PipelineError(
            f"trial {trial.number}'s per-image record is damaged ({damaged})"
        ) from None


def _after_selection(
    best: optuna.trial.FrozenTrial,
    baseline: optuna.trial.FrozenTrial,
    complete: list[optuna.trial.FrozenTrial],
    who: str,
) -> Verdict:
    """The best against the baseline, adjusted for having been chosen among the complete trials
    (paired.after_selection), in one of three outcomes."""
    rivals = [
        trial
        for trial in complete
        if trial.number not in (best.number, baseline.number)
        and names.VAL_CORRECT_ATTR in trial.system_attrs
    ]
    others = [_answers(trial) for trial in rivals]
    epochs = [answers for trial in (best, *rivals) for answers in _other_epochs(trial)]
    chosen, base = _answers(best), _answers(baseline)
    if any(len(answers) != len(base) for answers in (chosen, *others, *epochs)):
        raise PipelineError("the trials' per-image records cover different images")
    comparison = paired.after_selection(chosen, others + epochs, base)
    adjusted = ""
    if (others or epochs) and comparison.gain > 0:
        adjusted = f", adjusted for choosing the best of {len(others) + 1} complete trials"
        if epochs:
            adjusted += f" and their epoch counts ({len(others) + len(epochs) + 1} models)"
    numbers = (
        f"{comparison.gain * 100:+.2f} pt ({comparison.interval()}, p = "
        f"{paired.p_text(comparison.p_value)}{adjusted})"
    )
    best_words = f"the best, {_describe(best)},"
    if comparison.outcome == paired.WITHIN_NOISE:
        sentence = (
            f"no configuration beat {who} beyond noise: {best_words} is within noise of it, "
            f"{numbers}"
        )
    else:
        sentence = paired.sentence(comparison.outcome, best_words, who, numbers)
    return Verdict(comparison, sentence, baseline, best, paired.compare(chosen, base))


def pruning(study: optuna.Study) -> tuple[float, str]:
    """The share of finished trials pruned, and in words, with the epochs they stopped at."""
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    pruned = [t for t in finished if t.state == PRUNED]
    if not finished:
        return 0.0, "no trial finished"
    share = len(pruned) / len(finished)
    words = f"{len(pruned)} of {len(finished)} trials pruned"
    at = Counter(t.user_attrs.get(names.PRUNED_AT_ATTR) for t in pruned)
    if pruned:
        where = ", ".join(
            f"{count} after epoch {epoch}" if epoch is not None else f"{count} at an unknown epoch"
            for epoch, count in sorted(at.items(), key=lambda item: item[0] or 0)
        )
        words += f" ({where})"
    return share, words


def unsettled(study: optuna.Study) -> str:
    """In words, that the search had not settled when the study stopped: its best came among
    its last quarter of finished trials, so more trials may find more ("" when it settled)."""
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    complete = [t for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
    if len(finished) < 4 or not complete:
        return ""
    best = max(complete, key=lambda t: (t.value, -t.number))
    place = [t.number for t in finished].index(best.number) + 1
    if place <= len(finished) - len(finished) // 4:
        return ""
    return (
        f"the search had not settled: its best came at trial {best.number}, the {place}th of "
        f"{len(finished)} finished trials (the last quarter); more trials may find more"
    )
