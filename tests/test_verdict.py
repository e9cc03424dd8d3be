"""A study's verdict: paired gains with known answers, the preset trial a study starts from, true
descriptions, and --retrain-best only for a real winner."""

from __future__ import annotations

import mlflow
import numpy as np
import optuna
import pytest
from conftest import runs

from pipeline import paired, tracking
from pipeline.architectures import REGISTRY
from pipeline.config import TuneConfig, train_config
from pipeline.tracking import names
from pipeline.tuning import study as studies
from pipeline.tuning import verdict
from pipeline.tuning.storage import open_storage
from pipeline.tuning.trials import VAL_CORRECT_ATTR, suggest


def answers(right: int, images: int = 2000, first_wrong: int = 0) -> np.ndarray:
    """Per-image correctness: `right` images right, the wrong ones starting at first_wrong."""
    correct = np.ones(images, dtype=bool)
    wrong = np.arange(first_wrong, first_wrong + images - right) % images
    correct[wrong] = False
    return correct


def test_identical_answers_gain_nothing():
    same = answers(1900)
    found = paired.compare(same, same)
    assert (found.gain, found.low, found.high, found.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert not found.significant


def test_fifty_more_right_of_2000_is_a_significant_gain():
    baseline = answers(1900)  # wrong on images 0-99
    better = baseline.copy()
    better[:50] = True  # right on 50 of them too
    found = paired.compare(better, baseline)
    assert found.gain == pytest.approx(0.025)
    assert found.p_value < 0.001 and found.significant
    assert 0 < found.low < 0.025 < found.high
    assert not paired.compare(baseline, better).significant  # a loss is no gain
    assert paired.compare(better, baseline) == found  # one record, one interval


def test_a_small_difference_among_many_disagreements_is_noise():
    baseline = answers(1900)
    other = answers(1903, first_wrong=40)  # wrong on 40-136: disagrees on 137 images
    found = paired.compare(other, baseline)
    assert found.gain == pytest.approx(3 / 2000)
    assert found.p_value > 0.5 and found.low < 0 < found.high and not found.significant
    assert "does not beat" in found.verdict("the tuned model", "the preset")


def test_per_image_answers_survive_the_round_trip_as_text():
    correct = np.random.default_rng(0).random(1969) < 0.97
    text = paired.pack(correct)
    assert len(text) < 400 and np.array_equal(paired.unpack(text), correct)


def _study(name: str, tune: TuneConfig, workdir) -> optuna.Study:
    storage = open_storage(f"sqlite:///{workdir / 'optuna.db'}", 10)
    study, created = studies.create_or_load(tune, "mlp", storage, name)
    assert created
    return study


def _add(study, number_params: dict, value: float, correct=None, state="COMPLETE", **attrs):
    distributions = {
        "learning_rate": optuna.distributions.FloatDistribution(1e-5, 1.0, log=True),
        "hidden_size": optuna.distributions.IntDistribution(8, 1024, log=True),
    }
    if correct is not None:
        attrs[VAL_CORRECT_ATTR] = paired.pack(correct)
    study.add_trial(
        optuna.trial.create_trial(
            params=number_params,
            distributions=distributions,
            value=value if state == "COMPLETE" else None,
            state=optuna.trial.TrialState[state],
            user_attrs=attrs,
        )
    )


def test_the_best_is_judged_against_the_preset_trial_on_the_same_images(workdir):
    study = optuna.create_study(direction="maximize")
    baseline, better = answers(1900), answers(1900)
    better[:50] = True
    _add(study, {"learning_rate": 0.001, "hidden_size": 256}, 0.95, baseline)
    _add(study, {"learning_rate": 0.003, "hidden_size": 512}, 0.975, better)
    _add(study, {"learning_rate": 0.3, "hidden_size": 8}, 0.1, state="PRUNED", pruned_at_epoch=3)
    # Which trial is the preset's is what the study enqueued it with, not its number.
    assert verdict.judge(study, "default").comparison is None
    study = optuna.create_study(direction="maximize")
    _add(study, {"learning_rate": 0.003, "hidden_size": 512}, 0.975, better)
    preset = {names.PRESET: "default"}
    _add(study, {"learning_rate": 0.001, "hidden_size": 256}, 0.95, baseline, **preset)
    _add(study, {"learning_rate": 0.3, "hidden_size": 8}, 0.1, state="PRUNED", pruned_at_epoch=3)
    found = verdict.judge(study, "default")
    assert found.significant and found.comparison.gain == pytest.approx(0.025)
    assert found.sentence.startswith("the best, trial 0 (learning_rate 0.003, hidden_size 512)")
    assert "beats trial 1 (the default preset) by +2.50 pt (95 % interval" in found.sentence
    assert verdict.pruning(study) == (
        pytest.approx(1 / 3),
        "1 of 3 trials pruned (1 after epoch 3)",
    )


def test_when_the_ranges_exclude_the_preset_no_trial_is_enqueued_and_the_run_says_so(workdir):
    tune = TuneConfig(storage=f"sqlite:///{workdir / 'optuna.db'}", epochs_range=(2, 4))
    study = _study("excluded", tune, workdir)
    assert study.trials == []  # the default MLP trains 20 epochs: outside 2-4
    _add(study, {"learning_rate": 0.003, "hidden_size": 512}, 0.975, answers(1950))
    tracking.setup()
    with tracking.run("tune", "tune-excluded", {}) as run:
        found, _ = studies._summarise(study, tune, run)
    assert found.comparison is None and not found.significant
    recorded = mlflow.get_run(run.run_id).data
    description = recorded.tags[names.NOTE]
    assert "built on the default preset (no preset trial: the ranges exclude it)" in description
    assert "the default preset as trial 0" not in description
    assert "Verdict: no preset trial ran" in description
    assert recorded.tags[names.VERDICT].startswith("no preset trial ran")
    assert names.VAL_GAIN not in recorded.metrics
    assert recorded.metrics[names.PRUNED_SHARE] == 0.0


def test_start_from_seed_makes_trial_0_the_seed_preset(workdir):
    tune = TuneConfig(storage=f"sqlite:///{workdir / 'optuna.db'}", start_from="seed")
    study = _study("from-seed", tune, workdir)
    seed = REGISTRY["mlp"].presets["seed"]
    assert seed != REGISTRY["mlp"].presets["default"]
    (trial,) = study.trials
    assert trial.state.name == "WAITING" and trial.user_attrs[names.PRESET] == "seed"
    # The MLP's epochs come from its curve: trial 0 holds the seed's searched values.
    fixed = trial.system_attrs["fixed_params"]  # what enqueue_trial gives the trial to run
    assert fixed == {key: seed[key] for key in ("learning_rate", "hidden_size")}
    config = suggest(optuna.trial.FixedTrial(fixed), tune, "mlp")
    high = tune.epochs_for("mlp")[1]
    assert config == train_config("mlp", "seed", epochs=high, validation_fraction=0.1, seed=0)
    assert config.batch_size == seed["batch_size"]  # the seed's own settings kept
    joining = TuneConfig(storage=tune.storage)  # --start-from default
    with pytest.raises(Exception, match="made with --start-from seed, not default"):
        studies.create_or_load(joining, "mlp", open_storage(tune.storage, 10), "from-seed")


def test_retrain_best_without_a_significant_gain_trains_nothing(cli, workdir, data_dir):
    storage = f"sqlite:///{workdir / 'optuna.db'}"
    args = ("--arch", "mlp", "--n-trials", "1", "--validation-fraction", "0.2")
    result = cli("tune", "--storage", storage, *args, "--retrain-best")
    assert result.exit_code == 0, result.stderr
    # One trial: the preset itself is the best, so nothing beat it.
    assert "Verdict: no configuration beat trial 0 (the default preset) beyond noise" in (
        result.stdout
    )
    line = "--retrain-best trained nothing for mlp, the champion stays: no configuration beat"
    assert [text for text in result.stdout.splitlines() if text.startswith(line)]
    assert mlflow.MlflowClient().search_registered_models() == []
    frame = runs()
    assert set(frame["tags.pipeline.stage"]) == {"tune", "trial"}  # no train, no evaluate
    parent = frame[frame["tags.pipeline.stage"] == "tune"].iloc[0]
    assert parent["metrics.val_gain"] == 0.0 and parent["metrics.val_gain_p_value"] == 1.0
    assert (parent["metrics.val_gain_low"], parent["metrics.val_gain_high"]) == (0.0, 0.0)


@pytest.mark.slow
def test_a_tuned_model_is_compared_with_the_default_preset_on_the_same_test_images(
    cli, workdir, data_dir
):
    from pipeline import training

    assert cli("train", "--arch", "mlp", "--no-progress").exit_code == 0  # the default preset
    preset_run = runs().iloc[0]["run_id"]
    assert cli("evaluate", "--run-id", preset_run, "--no-register").exit_code == 0
    config = train_config("mlp", "default", learning_rate=0.02, hidden_size=16, epochs=3)
    tags = {names.TUNED_FROM: "mnist-mlp"}
    tuned_run = training.train(config, data_dir, workdir / "checkpoints", tags=tags).run_id
    result = cli("evaluate", "--run-id", tuned_run, "--no-register")
    assert result.exit_code == 0, result.stderr

    frame = runs()
    evaluations = frame[frame["tags.pipeline.stage"] == "evaluate"]
    by_run = evaluations.set_index("tags.pipeline.evaluated_run")
    assert by_run.loc[preset_run, "tags.pipeline.preset"] == "default"  # a baseline
    tuned = by_run.loc[tuned_run]
    assert tuned.isna()["tags.pipeline.preset"]  # a tuned model is no baseline
    correct = {
        run: paired.unpack(tracking.read_text(by_run.loc[run, "run_id"], "test_correct.txt"))
        for run in (preset_run, tuned_run)
    }
    expected = paired.compare(correct[tuned_run], correct[preset_run])
    gain = tuned["metrics.test_accuracy"] - by_run.loc[preset_run, "metrics.test_accuracy"]
    assert expected.gain == pytest.approx(gain)
    for key, value in names.gains(
        "test", expected.gain, expected.low, expected.high, expected.p_value
    ).items():
        assert tuned[f"metrics.{key}"] == pytest.approx(value), key
        assert mlflow.get_run(tuned_run).data.metrics[key] == pytest.approx(value), key
    assert "paired: the tuned model" in result.stdout
    assert "the default-preset model (evaluate run" in tuned["tags.mlflow.note.content"]

    report = cli("report", "--output-dir", workdir / "out")
    assert report.exit_code == 0, report.stderr
    row = next(
        line
        for line in (workdir / "out" / "report.md").read_text().splitlines()
        if "| mlp | tuned best |" in line
    )
    assert f"| {expected.gain * 100:+.2f} pt ({expected.low * 100:+.2f} to " in row


def test_fold_splits_validate_every_training_image_once_stratified():
    from conftest import synthetic_digits

    from pipeline import data

    x, y = synthetic_digits(300, seed=0)
    dataset = data.Dataset(x, y, x[:10], y[:10], digest="d", official=False, source="synthetic")
    folds = data.fold_splits(dataset, 3, seed=0)
    assert len(folds) == 3
    validated = np.concatenate([fold.x_val for fold in folds])
    assert len(validated) == 300
    assert len({image.tobytes() for image in validated}) == len({i.tobytes() for i in x})
    for fold in folds:
        assert len(fold.y_train) + len(fold.y_val) == 300
        assert np.bincount(fold.y_val, minlength=10).tolist() == [10] * 10  # stratified
    digests = {fold.part_digest("validation") for fold in folds}
    assert len(digests) == 3  # each fold's validation part is its own dataset
    again = data.fold_splits(dataset, 3, seed=0)
    assert all(np.array_equal(a.y_val, b.y_val) for a, b in zip(folds, again, strict=True))
    with pytest.raises(Exception, match="--folds 400 leaves an empty fold"):
        data.fold_splits(dataset, 400, seed=0)


@pytest.mark.slow
def test_cross_validated_trials_are_judged_on_every_training_image(cli, workdir, data_dir, tiny):
    storage = f"sqlite:///{workdir / 'optuna.db'}"
    args = ("--arch", "mlp", "--n-trials", "2", "--folds", "3", "--pruner", "none")
    result = cli("tune", "--storage", storage, *tiny.tune, *args, "--epochs-range", "2", "3")
    assert result.exit_code == 0, result.stderr
    study = optuna.load_study(study_name="mnist-mlp", storage=storage)
    train_images = 300  # the synthetic training file (validation comes from it)
    for trial in study.trials:
        assert len(paired.unpack(trial.user_attrs[VAL_CORRECT_ATTR])) == train_images
        run = mlflow.get_run(trial.user_attrs["mlflow_run_id"])
        folds = mlflow.MlflowClient().get_metric_history(run.info.run_id, "fold_val_accuracy")
        assert sorted(metric.step for metric in folds) == [1, 2, 3]
        assert trial.value == pytest.approx(np.mean([metric.value for metric in folds]))
        assert trial.value == pytest.approx(
            paired.unpack(trial.user_attrs[VAL_CORRECT_ATTR]).mean(), abs=1e-6
        )
        assert run.data.tags["pipeline.folds"] == "3"
        # Optuna saw the first fold's epochs only (pruning judges it alone).
        assert sorted(trial.intermediate_values) == [1, 2, 3]
        validation = {i.dataset.digest for i in run.inputs.dataset_inputs}
        assert len(validation) == 6  # three folds' training and validation parts
    parent = mlflow.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert "trials scored by 3-fold cross-validation" in parent.data.tags["mlflow.note.content"]


def test_the_readme_gives_the_size_of_a_trials_per_image_record():
    from conftest import REPO

    size = len(paired.pack(np.zeros(1969, dtype=bool)))
    readme = " ".join((REPO / "README.md").read_text().split())
    assert f"{size} characters of packed bits for 1,969 images" in readme
