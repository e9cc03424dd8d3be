"""A trial's epochs: where the pruner first judges, the epoch count its curve chooses."""

from __future__ import annotations

import re

import mlflow
import optuna
import pytest
from conftest import (
    add_hopeless_baseline,
    runs,
)
from study_helpers import storage_url, study_runs, tune


def test_the_default_pruner_judges_no_trial_before_its_first_rung_where_the_readme_says():
    """Successive halving from 25 % of the longest schedule (epoch 5 of the MLP's 20): slow
    starters trail early and win at full length (bench/search_cases.py replay), so a hopeless
    trial still trains that long, then stops."""
    from conftest import REPO

    from pipeline.tune_config import TuneConfig
    from pipeline.tuning.pruning import PRUNE_AFTER_SHARE, pruner

    readme = " ".join((REPO / "README.md").read_text().split())
    share = round(100 * PRUNE_AFTER_SHARE)
    assert f"judges a trial first after {share} % of the longest schedule (epoch 5 of" in readme
    for arch, search, first in (
        ("mlp", "standard", 5),
        ("lstm", "standard", share),
        ("mlp", "wide", share),
    ):
        tune = TuneConfig(arch=arch, search=search)
        study = optuna.create_study(direction="maximize", pruner=pruner(tune, arch, 1970))
        good = study.ask()
        for step in range(1, 101):
            good.report(0.9, step)
            assert not good.should_prune()
        study.tell(good, 0.9)
        hopeless = study.ask()
        for step in range(1, 101):
            hopeless.report(0.1, step)
            if hopeless.should_prune():
                break
        assert step == first, (arch, search)


def _curve_trial(study: optuna.Study, curve: list[float]) -> bool:
    """Run a trial reporting as an MLP trial does (its best accuracy so far, at each epoch);
    whether it was pruned."""
    trial = study.ask()
    for epoch in range(1, len(curve) + 1):
        trial.report(max(curve[:epoch]), epoch)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return True
    study.tell(trial, max(curve))
    return False


def test_a_slow_starter_that_wins_at_full_length_is_not_pruned():
    """Six trials level off early at 93-95 %; a slow starter is the worst after epoch 3, the
    best from epoch 5, and ends at 97 %. The default pruner keeps it; a first rung at epoch 3
    (the old default) stopped it there."""
    from pipeline.tune_config import TuneConfig
    from pipeline.tuning.pruning import pruner

    fast = [
        [plateau - 0.05 / epoch**2 for epoch in range(1, 21)]
        for plateau in (0.930, 0.935, 0.940, 0.945, 0.948, 0.950)
    ]
    slow = [0.60 + 0.3 * min(epoch, 3) / 3 + 0.025 * max(0, epoch - 3) for epoch in range(1, 21)]
    slow = [min(value, 0.97) for value in slow]
    assert slow[2] < min(curve[2] for curve in fast) and slow[4] > max(c[4] for c in fast)
    for first_rung, pruned in ((None, False), (3, True)):
        chosen = (
            pruner(TuneConfig(), "mlp", 1970)
            if first_rung is None
            else (
                optuna.pruners.SuccessiveHalvingPruner(min_resource=first_rung, reduction_factor=3)
            )
        )
        study = optuna.create_study(direction="maximize", pruner=chosen)
        assert not any(_curve_trial(study, curve) for curve in fast[:1])  # nothing to compare
        for curve in fast[1:]:
            _curve_trial(study, curve)
        assert _curve_trial(study, slow) is pruned, first_rung
    assert study.best_value < 0.97  # the old rung lost the best configuration


def test_the_best_epoch_count_is_the_latest_best_within_the_range():
    from pipeline.tuning.trials import best_epoch

    curve = [0.99, 0.90, 0.95, 0.93, 0.95, 0.94]
    assert best_epoch(curve, (2, 6)) == 5  # epoch 1 is below the range; a tie goes to the later
    assert best_epoch(curve, (2, 4)) == 3
    assert best_epoch(curve, (2, 3)) == 3


@pytest.mark.slow
def test_under_a_constant_learning_rate_a_trial_trains_the_range_top_and_keeps_its_best_epoch(
    cli, workdir, data_dir, tiny
):
    """Epoch k of a long trial trains as a k-epoch trial: every trial trains the top of the
    range, its epoch count is its best validation epoch, and --retrain-best trains that."""
    from pipeline.tuning.trials import best_epoch

    common = ("--arch", "mlp", "--sampler", "random", "--pruner", "none")
    common += ("--epochs-range", "2", "5", "--learning-rate-range", "0.2", "1.0", "--no-widen")
    first = tune(cli, workdir, tiny, *common, "--n-trials", "3")
    # The ranges exclude the preset: a stand-in baseline that the study's best beats for sure.
    add_hopeless_baseline(storage_url(workdir), "data-mlp")
    result = tune(cli, workdir, tiny, *common, "--n-trials", "1", "--retrain-best")
    assert "no preset trial ran" in first.stdout
    assert "beats trial 3 (the default preset)" in result.stdout
    study = optuna.load_study(study_name="data-mlp", storage=storage_url(workdir))
    client = mlflow.MlflowClient()
    assert {trial.state.name for trial in study.trials} == {"COMPLETE"}
    dropped = 0  # trials whose last epoch was below their best (these learning rates overshoot)
    for trial in study.trials:
        if trial.number == 3:
            continue  # the stand-in baseline
        assert "epochs" not in trial.params  # the sampler learns nothing about epochs
        run = mlflow.get_run(trial.user_attrs["mlflow_run_id"])
        assert trial.user_attrs["epochs_trained"] == 5
        history = sorted(
            client.get_metric_history(run.info.run_id, "val_accuracy"),
            key=lambda metric: (metric.step, metric.timestamp),
        )
        by_step = {}  # each epoch's own value: the first at its step
        for metric in history:
            by_step.setdefault(metric.step, metric.value)
        curve = list(by_step.values())
        assert len(curve) == 5
        chosen = trial.user_attrs["epochs"]
        assert run.data.params["epochs"] == str(chosen)  # the count its value is of
        assert chosen == best_epoch(curve, (2, 5))
        assert trial.value == pytest.approx(max(curve[1:]))
        assert run.data.tags["pipeline.best_epoch"] == str(chosen)
        # The pruner sees what the trial would score if stopped: its best accuracy so far.
        running = [max(curve[:epoch]) for epoch in range(1, 6)]
        assert [trial.intermediate_values[step] for step in range(1, 6)] == pytest.approx(running)
        dropped += curve[-1] < trial.value
        assert re.search(
            rf"trial +{trial.number} .* epochs={chosen} ", first.stdout + result.stdout
        )
    assert dropped  # else the test could not tell the best epoch from the last
    best = study.best_trial
    parents, _ = study_runs("data-mlp")
    assert parents.iloc[0]["tags.best.epochs"] == str(best.user_attrs["epochs"])
    frame = runs()
    retrained = frame[frame["tags.pipeline.tuned_from"] == "data-mlp"]
    assert list(retrained["params.epochs"]) == [str(best.user_attrs["epochs"])]


def test_a_trial_within_the_validation_noise_of_the_promoted_third_goes_on():
    """At a rung the default pruner spares a trial behind the top third by less than one
    standard error of an accuracy on the study's validation images (about 0.5 pt on 1,970
    images near 95 %), and stops one further behind; plain successive halving stops both."""
    from pipeline.tune_config import TuneConfig
    from pipeline.tuning.pruning import pruner

    fast = [[plateau] * 20 for plateau in (0.930, 0.935, 0.940, 0.945, 0.948, 0.950)]
    for level, pruned in ((0.946, False), (0.940, True)):
        study = optuna.create_study(direction="maximize", pruner=pruner(TuneConfig(), "mlp", 1970))
        for curve in fast:
            _curve_trial(study, curve)
        assert _curve_trial(study, [level] * 20) is pruned, level
        plain = optuna.pruners.SuccessiveHalvingPruner(min_resource=5, reduction_factor=3)
        study = optuna.create_study(direction="maximize", pruner=plain)
        for curve in fast:
            _curve_trial(study, curve)
        assert _curve_trial(study, [level] * 20)
