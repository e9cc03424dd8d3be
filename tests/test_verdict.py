"""A study's verdict: paired gains with known answers, the preset trial a study starts from, true
descriptions, and --retrain-best only for a real winner."""

from __future__ import annotations

import os

import mlflow
import numpy as np
import optuna
import pytest
from conftest import runs

from pipeline import paired, tracking
from pipeline.architectures import REGISTRY
from pipeline.config import train_config
from pipeline.errors import PipelineError
from pipeline.tracking import names
from pipeline.tune_config import TuneConfig
from pipeline.tuning import opening, ranges, verdict
from pipeline.tuning import study as studies
from pipeline.tuning.search import suggest
from pipeline.tuning.storage import open_storage


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
    worse = paired.compare(baseline, better)
    assert not worse.significant and worse.outcome == paired.WORSE  # a loss, worded as one
    assert worse.verdict("the tuned model", "the preset").startswith(
        "the tuned model is worse than the preset beyond noise, by -2.50 pt"
    )
    assert paired.compare(better, baseline) == found  # one record, one interval


def test_a_small_difference_among_many_disagreements_is_noise():
    baseline = answers(1900)
    other = answers(1903, first_wrong=40)  # wrong on 40-136: disagrees on 137 images
    found = paired.compare(other, baseline)
    assert found.gain == pytest.approx(3 / 2000)
    assert found.p_value > 0.5 and found.low < 0 < found.high and not found.significant
    assert found.outcome == paired.WITHIN_NOISE
    assert "the tuned model is within noise of the preset (+0.15 pt" in found.verdict(
        "the tuned model", "the preset"
    )


def near_copies(rng, trials: int, images: int) -> np.ndarray:
    """Per-image answers of trials + 1 models of equal expected accuracy (row 0 the preset):
    every image has its own difficulty, every model its own luck."""
    difficulty = rng.beta(0.3, 6, images)  # most images easy, a few hard
    return rng.random((trials + 1, images)) > difficulty


def test_near_identical_trials_claim_a_winner_rarely_once_the_choice_is_counted():
    rng = np.random.default_rng(7)
    studies, naive, adjusted = 200, 0, 0
    for _ in range(studies):
        answers = near_copies(rng, 19, 800)
        best = 1 + int(answers[1:].sum(axis=1).argmax())
        others = [answers[k] for k in range(1, 20) if k != best]
        naive += paired.compare(answers[best], answers[0]).significant
        adjusted += paired.after_selection(answers[best], others, answers[0]).significant
    assert adjusted / studies <= 0.08, adjusted
    assert naive / studies > 0.08 and naive > adjusted, (naive, adjusted)


def test_a_studys_verdict_counts_the_trials_its_best_was_chosen_from():
    answers = near_copies(np.random.default_rng(3), 19, 2000)
    study = optuna.create_study(direction="maximize")
    preset = {names.PRESET: "default", "epochs": 7, "epochs_trained": 20}
    for number, correct in enumerate(answers):
        params = {"learning_rate": 0.001 * (1 + number / 100), "hidden_size": 256}
        _add(study, params, float(correct.mean()), correct, **(preset if number == 0 else {}))
    found = verdict.judge(study, "default")
    best = found.best.number
    others = [answers[k] for k in range(1, 20) if k != best]
    bounded = paired.after_selection(answers[best], others, answers[0])
    assert found.comparison == bounded
    assert found.apparent == paired.compare(answers[best], answers[0])
    assert found.comparison.p_value > found.apparent.p_value  # the choice costs evidence
    assert found.comparison.high - found.comparison.low > found.apparent.high - found.apparent.low
    assert "adjusted for choosing the best of 19 complete trials" in found.sentence
    assert "trial 0 (the default preset, 7 of 20 epochs by its validation curve)" in found.sentence


def test_per_image_answers_survive_the_round_trip_as_text():
    correct = np.random.default_rng(0).random(1969) < 0.97
    text = paired.pack(correct)
    assert len(text) < 400 and np.array_equal(paired.unpack(text), correct)


def _study(name: str, tune: TuneConfig, workdir) -> optuna.Study:
    storage = open_storage(f"sqlite:///{workdir / 'optuna.db'}", 10)
    study, created = opening.create_or_load(tune, "mlp", storage, name)
    assert created
    return study


def _add(study, number_params: dict, value: float, correct=None, state="COMPLETE", **attrs):
    distributions = {
        "learning_rate": optuna.distributions.FloatDistribution(1e-5, 1.0, log=True),
        "hidden_size": optuna.distributions.IntDistribution(8, 1024, log=True),
    }
    system = {}  # the per-image record, as a trial keeps it
    if correct is not None:
        system[names.VAL_CORRECT_ATTR] = paired.pack(correct)
    for key in (names.VAL_CORRECT_ATTR, names.VAL_CORRECT_EPOCHS_ATTR):
        if key in attrs:
            system[key] = attrs.pop(key)
    study.add_trial(
        optuna.trial.create_trial(
            params=number_params,
            distributions=distributions,
            value=value if state == "COMPLETE" else None,
            state=optuna.trial.TrialState[state],
            user_attrs=attrs,
            system_attrs=system,
        )
    )


def _model(base: np.ndarray, discordant: int, gain: int, rng) -> np.ndarray:
    """base with `discordant` images answered otherwise, `gain` more of them now right."""
    model = base.copy()
    up = rng.choice(np.flatnonzero(~base), (discordant + gain) // 2, replace=False)
    down = rng.choice(np.flatnonzero(base), (discordant - gain) // 2, replace=False)
    model[up], model[down] = True, False
    return model


def test_the_epoch_counts_a_curve_chose_among_count_among_the_candidates():
    """A trial's epoch count is chosen on the same images as the best trial: the models after
    the counts it passed over are candidates too, so a gain that two trials make look real is
    within noise of what 40 more models would show by chance."""
    rng = np.random.default_rng(3)
    base = answers(1800)
    best, rival = _model(base, 200, 40, rng), _model(base, 200, 0, rng)
    passed_over = [paired.pack(_model(base, 200, 0, rng)) for _ in range(40)]
    found = {}
    for with_epochs in (False, True):
        study = optuna.create_study(direction="maximize")
        preset = {names.PRESET: "default"}
        _add(study, {"learning_rate": 0.001, "hidden_size": 256}, 0.9, base, **preset)
        for model, value, records in (
            (rival, 0.9, passed_over[:20]),
            (best, 0.91, passed_over[20:]),
        ):
            other = {str(e): text for e, text in enumerate(records, start=2)}
            extra = {names.VAL_CORRECT_EPOCHS_ATTR: other} if with_epochs else {}
            _add(study, {"learning_rate": 0.003, "hidden_size": 512}, value, model, **extra)
        found[with_epochs] = verdict.judge(study, "default")
    assert found[False].significant and not found[True].significant
    assert found[True].comparison.p_value > 0.05 > found[False].comparison.p_value
    assert (
        "adjusted for choosing the best of 2 complete trials and their epoch counts (42 models)"
        in (found[True].sentence)
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
    assert "beats trial 1 (the default preset) beyond noise by +2.50 pt (95 % interval" in (
        found.sentence
    )
    assert verdict.pruning(study) == (
        pytest.approx(1 / 3),
        "1 of 3 trials pruned (1 after epoch 3)",
    )


def test_when_the_ranges_exclude_the_preset_no_trial_is_enqueued_and_the_run_says_so(workdir):
    tune = TuneConfig(storage=f"sqlite:///{workdir / 'optuna.db'}", epochs_range=(2, 4))
    study = _study("excluded", tune, workdir)
    assert study.trials == []  # the default MLP trains 20 epochs: outside 2-4
    _add(study, {"learning_rate": 0.003, "hidden_size": 512}, 0.975, answers(1950))
    tracking.Store(os.environ["MLFLOW_TRACKING_URI"]).open()
    with tracking.run("tune", "tune-excluded", {}) as run:
        found, _, _ = studies._summarise(study, tune, "mlp", run)
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
    config = suggest(optuna.trial.FixedTrial(fixed), tune, "mlp", ranges.initial(tune, "mlp"))
    high = tune.epochs_for("mlp")[1]
    assert config == train_config("mlp", "seed", epochs=high, validation_fraction=0.1, seed=0)
    assert config.batch_size == seed["batch_size"]  # the seed's own settings kept
    joining = TuneConfig(storage=tune.storage)  # --start-from default
    with pytest.raises(Exception, match="made with --start-from seed, not default"):
        opening.create_or_load(joining, "mlp", open_storage(tune.storage, 10), "from-seed")


def test_retrain_best_without_a_significant_gain_trains_nothing(cli, workdir, data_dir):
    storage = f"sqlite:///{workdir / 'optuna.db'}"
    args = ("--arch", "mlp", "--n-trials", "1", "--validation-fraction", "0.2")
    result = cli("tune", "--storage", storage, *args, "--retrain-best")
    assert result.exit_code == 0, result.stderr
    # One trial: the preset itself is the best, so nothing beat it.
    assert "Verdict: no configuration beat trial 0 (the default preset, " in result.stdout
    assert "by its validation curve): it is the best" in result.stdout
    line = "--retrain-best trained nothing for mlp, the champion stays: no configuration beat"
    assert [text for text in result.stdout.splitlines() if text.startswith(line)]
    assert mlflow.MlflowClient().search_registered_models() == []
    frame = runs()
    assert set(frame["tags.pipeline.stage"]) == {"tune", "trial"}  # no train, no evaluate
    parent = frame[frame["tags.pipeline.stage"] == "tune"].iloc[0]
    assert parent["metrics.val_gain_pt"] == 0.0 and parent["metrics.val_gain_p_value"] == 1.0
    assert (parent["metrics.val_gain_low_pt"], parent["metrics.val_gain_high_pt"]) == (0.0, 0.0)


@pytest.mark.slow
def test_a_tuned_models_test_gain_is_over_its_studys_baseline_not_a_full_length_preset(
    cli, workdir, data_dir
):
    from pipeline import training
    from pipeline.tuning.baseline import baseline_tags, preset_config

    tune = TuneConfig()
    assert cli("train", "--arch", "mlp", "--no-progress").exit_code == 0  # the baseline
    baseline_run = runs().iloc[0]["run_id"]
    assert cli("evaluate", "--run-id", baseline_run, "--no-register").exit_code == 0
    # A newer default-preset model trained the full 20 epochs: not what trial 0 trains.
    assert cli("train", "--arch", "mlp", "--no-early-stopping", "--no-progress").exit_code == 0
    full_run = runs().iloc[0]["run_id"]
    assert cli("evaluate", "--run-id", full_run, "--no-register").exit_code == 0
    baseline = mlflow.get_run(baseline_run).data
    assert baseline.params["early_stopping"] == "True" and names.BEST_EPOCH in baseline.tags
    assert mlflow.get_run(full_run).data.params["early_stopping"] == "False"
    hashed = baseline_tags(tune, "mlp")
    assert baseline.tags[names.CONFIG_HASH] == hashed[names.BASELINE_CONFIG_HASH]
    assert preset_config(tune, "mlp").early_stopping

    config = train_config("mlp", "default", learning_rate=0.02, hidden_size=16, epochs=3)
    tags = {names.TUNED_FROM: "mnist-mlp", **hashed}
    store = tracking.Store(os.environ["MLFLOW_TRACKING_URI"])
    tuned_run = training.train(
        config, data_dir, workdir / "checkpoints", tags=tags, store=store
    ).run_id
    result = cli("evaluate", "--run-id", tuned_run, "--no-register")
    assert result.exit_code == 0, result.stderr

    frame = runs()
    evaluations = frame[frame["tags.pipeline.stage"] == "evaluate"]
    by_run = evaluations.set_index("tags.pipeline.evaluated_run")
    tuned = by_run.loc[tuned_run]
    correct = {
        run: paired.unpack(tracking.read_text(by_run.loc[run, "run_id"], "test_correct.txt"))
        for run in (baseline_run, tuned_run)
    }
    expected = paired.compare(correct[tuned_run], correct[baseline_run])
    gain = tuned["metrics.test_accuracy"] - by_run.loc[baseline_run, "metrics.test_accuracy"]
    assert expected.gain == pytest.approx(gain)
    for key, value in names.gains("test", expected.points()).items():
        assert tuned[f"metrics.{key}"] == pytest.approx(value), key
        assert mlflow.get_run(tuned_run).data.metrics[key] == pytest.approx(value), key
    assert key.endswith("p_value") and names.TEST_GAIN.endswith("_pt")  # points, as worded
    assert "paired: the tuned model" in result.stdout
    note = tuned["tags.mlflow.note.content"]
    evaluated = by_run.loc[baseline_run, "run_id"]
    assert f"the default preset as trial 0 trained it (evaluate run {evaluated})" in note
    assert by_run.loc[full_run, "run_id"] not in note

    report = cli("report", "--output-dir", workdir / "out")
    assert report.exit_code == 0, report.stderr
    row = next(
        line
        for line in (workdir / "out" / "report.md").read_text().splitlines()
        if "| mlp | tuned best (mnist-mlp, from the default preset) |" in line
    )
    assert f"| {expected.gain * 100:+.2f} pt ({expected.low * 100:+.2f} to " in row


@pytest.mark.slow
def test_trial_0_is_the_model_train_makes_of_the_preset(cli, workdir, data_dir):
    """One baseline: the study's preset trial and `train`'s preset model are the same model,
    stopped at the same epoch, right on the same validation images."""
    from pipeline import data

    storage = f"sqlite:///{workdir / 'optuna.db'}"
    args = ("--arch", "mlp", "--n-trials", "1", "--validation-fraction", "0.2")
    assert cli("tune", "--storage", storage, *args).exit_code == 0
    (trial,) = optuna.load_study(study_name="data-mlp", storage=storage).trials
    assert trial.user_attrs[names.PRESET] == "default"
    result = cli("train", "--arch", "mlp", "--validation-fraction", "0.2", "--no-progress")
    assert result.exit_code == 0, result.stderr
    train_run = runs().query("`tags.pipeline.stage` == 'train'").iloc[0]
    assert train_run["tags.pipeline.best_epoch"] == str(trial.user_attrs["epochs"])
    model = mlflow.pyfunc.load_model(train_run["tags.pipeline.model_uri"])
    splits = data.split_train_validation(data.load_dataset(data_dir), 0.2, 0)
    answers = model.predict(splits.x_val).argmax(axis=1) == splits.y_val
    assert np.array_equal(answers, paired.unpack(trial.system_attrs[names.VAL_CORRECT_ATTR]))
    assert train_run["metrics.val_accuracy"] is not None


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
    study = optuna.load_study(study_name="data-mlp", storage=storage)
    train_images = 300  # the synthetic training file (validation comes from it)
    for trial in study.trials:
        assert len(paired.unpack(trial.system_attrs[names.VAL_CORRECT_ATTR])) == train_images
        run = mlflow.get_run(trial.user_attrs["mlflow_run_id"])
        folds = mlflow.MlflowClient().get_metric_history(run.info.run_id, "fold_val_accuracy")
        assert sorted(metric.step for metric in folds) == [1, 2, 3]
        assert trial.value == pytest.approx(np.mean([metric.value for metric in folds]))
        assert trial.value == pytest.approx(
            paired.unpack(trial.system_attrs[names.VAL_CORRECT_ATTR]).mean(), abs=1e-6
        )
        assert run.data.tags["pipeline.folds"] == "3"
        # Optuna saw the first fold's epochs only (pruning judges it alone).
        trained = trial.user_attrs["epochs_trained"]  # 3, or more once the range widened
        assert sorted(trial.intermediate_values) == list(range(1, trained + 1))
        validation = {i.dataset.digest for i in run.inputs.dataset_inputs}
        assert len(validation) == 6  # three folds' training and validation parts
    parent = mlflow.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert "trials scored by 3-fold cross-validation" in parent.data.tags["mlflow.note.content"]


@pytest.mark.slow
def test_the_readme_gives_the_size_of_a_trials_per_image_record():
    """Its figures are the code's on the real subset: the validation split's size and the
    length of a trial's packed per-image record for it."""
    from conftest import REPO, require_shared_mnist

    from pipeline import data

    source = require_shared_mnist()
    labels = data.parse_idx(source / "train-labels-idx1-ubyte.gz", "labels")
    images = np.zeros((len(labels), 1, 1), dtype=np.uint8)
    dataset = data.Dataset(images, labels, images[:1], labels[:1], "d", False, "s")
    held_out = len(data.split_train_validation(dataset, 0.1, 0).y_val)
    size = len(paired.pack(np.ones(held_out, dtype=bool)))
    readme = " ".join((REPO / "README.md").read_text().split())
    assert f"{size} characters of packed bits for {held_out:,} images" in readme
    assert f"validation split of the MNIST subset holds {held_out:,} images" in readme
    assert f"all {len(labels):,} training images of the subset instead of {held_out:,}" in readme


def test_a_retried_preset_trial_serves_the_verdict(workdir):
    """Trial 0's worker died; Optuna's retry (which copies its user attributes) completed: the
    verdict compares the best with the retry, not with the failed first run."""
    tune = TuneConfig(storage=f"sqlite:///{workdir / 'optuna.db'}", epochs_range=(2, 4))
    study = _study("retried", tune, workdir)  # the ranges exclude the preset: nothing queued
    preset = {"learning_rate": 0.001, "hidden_size": 256}
    _add(study, preset, 0.0, state="FAIL", **{names.PRESET: "default"})
    _add(study, preset, 0.95, answers(1900), **{names.PRESET: "default"})
    _add(study, {"learning_rate": 0.003, "hidden_size": 512}, 0.99, answers(1980))
    found = verdict.judge(study, "default")
    assert found.baseline.number == 1 and found.significant, found.sentence
    assert "ended fail" not in found.sentence


def test_a_preset_trial_that_failed_is_queued_again_by_the_next_worker(workdir):
    """Ctrl-C (or a killed journal worker) left trial 0 failed and not retried: the next worker
    to join the study queues the preset again, so the study keeps its baseline."""
    tune = TuneConfig(storage=f"sqlite:///{workdir / 'optuna.db'}")
    study = _study("interrupted", tune, workdir)
    first = study.ask()  # the queued preset trial
    assert names.PRESET in first.user_attrs
    study.tell(first, state=optuna.trial.TrialState.FAIL)
    joined, created = opening.open_study(
        tune, "mlp", open_storage(tune.storage, 10), "interrupted"
    )
    assert not created
    waiting = joined.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [(t.params, t.user_attrs[names.PRESET]) for t in waiting] == [(first.params, "default")]
    opening.open_study(tune, "mlp", open_storage(tune.storage, 10), "interrupted")
    assert len(joined.get_trials(states=(optuna.trial.TrialState.WAITING,))) == 1  # not twice


@pytest.mark.parametrize(
    "damage, why",
    [
        (lambda text: text[: 5 + 200], "cut short or altered"),  # a partial write
        (lambda text: text.replace(":", ":@@"), "not base64"),
        (lambda text: "garbage", "not an image count"),
    ],
)
def test_a_damaged_per_image_record_is_refused_never_padded(workdir, damage, why):
    """A record cut short used to be padded with zeros, turning +0.50 pt (p = 1) into a false
    win; now the verdict names the damaged trial and makes no comparison."""
    tune = TuneConfig(storage=f"sqlite:///{workdir / 'optuna.db'}", epochs_range=(2, 4))
    study = _study(f"damaged-{why[:3]}", tune, workdir)
    base, best = answers(1900), answers(1910)
    with pytest.raises(PipelineError, match=why):
        paired.unpack(damage(paired.pack(base)))
    record = {names.PRESET: "default", names.VAL_CORRECT_ATTR: damage(paired.pack(base))}
    _add(study, {"learning_rate": 0.001, "hidden_size": 256}, 0.95, **record)
    _add(study, {"learning_rate": 0.003, "hidden_size": 512}, 0.955, best)
    found = verdict.judge(study, "default")
    assert found.comparison is None and not found.significant
    assert found.sentence.startswith("trial 0's per-image record is damaged"), found.sentence
    assert why in found.sentence


def test_a_damaged_baseline_test_record_gives_no_test_gain(workdir):
    """The evaluate run of a tuned model's baseline holds a truncated test_correct.txt (a real
    partial file in a real store): the tuned model gets no test gain, and says why."""
    import mlflow

    from pipeline import evaluation, tracking

    tracking.Store(os.environ["MLFLOW_TRACKING_URI"]).open()
    tags = {names.STAGE: "evaluate", names.CONFIG_HASH: "abc", names.DATA_DIGEST: "d1"}
    with mlflow.start_run(tags=tags) as run:
        mlflow.log_text(paired.pack(answers(1900))[:100], evaluation.CORRECT_FILE)
    tuned = {names.BASELINE_CONFIG_HASH: "abc", names.BASELINE_PRESET: "default"}
    comparison, sentence = evaluation._against_baseline(tuned, "d1", answers(1910))
    assert comparison is None
    assert "is damaged (" in sentence and run.info.run_id in sentence
