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


def test_the_default_pruner_judges_no_trial_before_epoch_3():
    """Successive halving from epoch 3 (15 % of a schedule): an early epoch's accuracy hardly
    ranks a trial's final one (bench/pruner_replay.py), so a hopeless trial still trains three
    epochs, then stops."""
    from pipeline.tune_config import TuneConfig
    from pipeline.tuning.pruning import pruner

    for arch, search, first in (
        ("mlp", "standard", 3),
        ("lstm", "standard", 15),
        ("mlp", "wide", 15),
    ):
        tune = TuneConfig(arch=arch, search=search)
        study = optuna.create_study(direction="maximize", pruner=pruner(tune, arch))
        good = study.ask()
        for step in range(1, 31):
            good.report(0.9, step)
            assert not good.should_prune()
        study.tell(good, 0.9)
        hopeless = study.ask()
        for step in range(1, 31):
            hopeless.report(0.1, step)
            if hopeless.should_prune():
                break
        assert step == first, (arch, search)


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
    common += ("--epochs-range", "2", "5", "--learning-rate-range", "0.2", "1.0")
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
        assert run.data.params["epochs"] == "5"
        history = sorted(
            client.get_metric_history(run.info.run_id, "val_accuracy"),
            key=lambda metric: metric.step,
        )
        curve = [metric.value for metric in history]
        assert len(curve) == 5
        chosen = trial.user_attrs["epochs"]
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
