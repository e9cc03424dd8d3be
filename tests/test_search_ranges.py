"""A study's search ranges: a best at an edge is named, and widens the range past it; a search
whose best came late says it had not settled."""

from __future__ import annotations

import mlflow
import optuna
import pytest
from study_helpers import storage_url, study_runs, tune

from pipeline.tracking import names
from pipeline.tune_config import TuneConfig, range_limits
from pipeline.tuning import ranges, verdict

SPACE = {"learning_rate": (1e-5, 1e-2), "hidden_size": (32, 1024), "epochs": (2, 20)}
LIMITS = range_limits("mlp")


def test_a_value_within_a_twentieth_of_the_log_width_is_at_the_edge():
    inside = {"learning_rate": 1e-3, "hidden_size": 256, "epochs": 10}
    assert ranges.edges(inside, SPACE, LIMITS) == []
    at = ranges.edges({"learning_rate": 1.3e-5, "hidden_size": 900, "epochs": 20}, SPACE, LIMITS)
    assert [(e.param, e.side, e.limit) for e in at] == [
        ("learning_rate", "floor", False),
        ("hidden_size", "ceiling", False),
        ("epochs", "ceiling", False),
    ]
    # Three decades: 5 % is 0.15 of a decade, so 1.5e-5 is just inside.
    assert ranges.edges({"learning_rate": 1.5e-5}, SPACE, LIMITS) == []
    assert str(at[0]) == "learning rate 1.3e-05 at the floor 1e-05"


def test_a_range_grows_by_half_its_width_up_to_its_limit():
    floor = ranges.Edge("learning_rate", 1e-5, "floor", 1e-5, False)
    low, high = ranges.widened(floor, (1e-5, 1e-2), LIMITS)
    assert (low, high) == (LIMITS["learning_rate"][0], 1e-2)  # not 10**-6.5
    low, high = ranges.widened(floor, (1e-4, 1e-2), LIMITS)
    assert (low, high) == (pytest.approx(1e-5), 1e-2)
    ceiling = ranges.Edge("hidden_size", 1000, "ceiling", 1024, False)
    assert ranges.widened(ceiling, (32, 1024), LIMITS) == (32, LIMITS["hidden_size"][1])
    assert ranges.widened(ceiling, (256, 1024), LIMITS) == (256, 2048)
    epochs = ranges.Edge("epochs", 20, "ceiling", 20, False)
    assert ranges.widened(epochs, (2, 20), LIMITS) == (2, 29)
    limited = ranges.edges({"hidden_size": 2048}, {"hidden_size": (32, 2048)}, LIMITS)
    assert limited[0].limit and str(limited[0]).endswith("(the widest allowed)")


def test_an_lstm_searches_and_widens_narrower_hidden_sizes_as_the_readme_says():
    """An LSTM's step costs about the square of its width: its hidden sizes start at 32..512
    and widen to 1024 at most, an MLP's start at 32..1024 and widen to 2048."""
    from conftest import REPO

    readme = " ".join((REPO / "README.md").read_text().split())
    assert "(log-uniform integers, 32…1024 for the MLP, 32…512 for the LSTM" in readme
    assert "hidden sizes 8…2048 (the MLP) or 8…1024 (the LSTM)" in readme
    lstm = range_limits("lstm")
    assert ranges.initial(TuneConfig(), "lstm")["hidden_size"] == (32, 512)
    assert ranges.initial(TuneConfig(), "mlp")["hidden_size"] == (32, 1024)
    ceiling = ranges.Edge("hidden_size", 500, "ceiling", 512, False)
    assert ranges.widened(ceiling, (32, 512), lstm) == (32, 1024)
    assert ranges.widened(ceiling, (32, 512), LIMITS) == (32, 2048)
    assert ranges.edges({"hidden_size": 1000}, {"hidden_size": (32, 1024)}, lstm)[0].limit
    assert not ranges.edges({"hidden_size": 1000}, {"hidden_size": (32, 1024)}, LIMITS)[0].limit


def test_an_epoch_count_tied_with_an_earlier_one_or_the_presets_is_not_at_an_edge():
    """A curve's tie goes to the later epoch: a flat end chosen at the range's top says nothing
    about more epochs; a new high there does. The preset trial's values were given: the
    default epoch range ends at the preset's own count."""
    from pipeline.tuning.search import edge_params

    def trial(best_so_far: list[float]) -> optuna.trial.FrozenTrial:
        return optuna.trial.create_trial(
            params={"learning_rate": 1e-3},
            distributions={"learning_rate": optuna.distributions.FloatDistribution(1e-5, 1)},
            value=best_so_far[-1],
            intermediate_values=dict(enumerate(best_so_far, start=1)),
            user_attrs={names.EPOCHS_ATTR: len(best_so_far)},
        )

    assert "epochs" not in edge_params(trial([0.90, 0.95, 0.95, 0.95]))
    assert edge_params(trial([0.90, 0.93, 0.94, 0.95]))["epochs"] == 4
    ranges_ = {"epochs": (2, 4)}
    assert ranges.edges(edge_params(trial([0.90, 0.93, 0.94, 0.95])), ranges_, LIMITS)
    assert not ranges.edges(edge_params(trial([0.90, 0.95, 0.95, 0.95])), ranges_, LIMITS)
    preset = trial([0.90, 0.93, 0.94, 0.95])
    preset.user_attrs[names.PRESET] = "default"  # given, not searched: no edge of its own
    assert edge_params(preset) == {}


def _study_with(values: list[float]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for value in values:
        study.add_trial(
            optuna.trial.create_trial(
                params={"learning_rate": 1e-3},
                distributions={"learning_rate": optuna.distributions.FloatDistribution(1e-5, 1)},
                value=value,
            )
        )
    return study


def test_a_best_in_the_last_quarter_of_trials_says_the_search_had_not_settled():
    assert verdict.unsettled(_study_with([0.90, 0.95, 0.91, 0.92, 0.93, 0.94, 0.92, 0.93])) == ""
    words = verdict.unsettled(_study_with([0.90, 0.91, 0.91, 0.92, 0.93, 0.94, 0.92, 0.96]))
    assert words.startswith("the search had not settled: its best came at trial 7, the 8th of 8")


@pytest.mark.slow
def test_a_study_widens_a_range_its_best_lies_at_the_edge_of(cli, workdir, data_dir, tiny):
    # In 10..11 every hidden size is at an edge: before trial 1, the study's only best lies at
    # one, so the range grows past it (by half its log-width: to 9 or to 12).
    args = ("--arch", "mlp", "--n-trials", "3", "--pruner", "none", "--epochs-range", "2", "3")
    result = tune(cli, workdir, tiny, *args, "--hidden-size-range", "10", "11")
    study = optuna.load_study(study_name="data-mlp", storage=storage_url(workdir))
    grown = [each for each in study.user_attrs[names.WIDENED_ATTR] if each[1] == "hidden_size"]
    assert grown[0][0] == 1 and grown[0][2] == [10, 11]
    assert grown[0][3] in ([9, 11], [10, 12])
    assert [t.distributions["hidden_size"].low for t in study.trials] == [
        10,
        *[grown[-1][3][0]] * 2,
    ]
    parents, _ = study_runs("data-mlp")
    tags = mlflow.get_run(parents.iloc[0]["run_id"]).data.tags
    assert "(widened from 10..11 before trial 1" in tags[names.RANGES]
    assert "(widened from 10..11 before trial 1" in tags["mlflow.note.content"]
    assert "Search: ranges learning rate" in result.stdout
    tune_config = TuneConfig(hidden_size_range=(10, 11), epochs_range=(2, 3))
    assert tags[names.RANGE_EDGES] == (
        ranges.edge_words(study, tune_config, "mlp", _best(study)) or "none"
    )


@pytest.mark.slow
def test_no_widen_keeps_the_ranges_and_names_a_best_at_an_edge(cli, workdir, data_dir, tiny):
    # In 10..11 every hidden size is at an edge, and the study's best ends at one.
    args = ("--arch", "mlp", "--n-trials", "2", "--pruner", "none", "--epochs-range", "2", "3")
    result = tune(cli, workdir, tiny, *args, "--hidden-size-range", "10", "11", "--no-widen")
    study = optuna.load_study(study_name="data-mlp", storage=storage_url(workdir))
    assert names.WIDENED_ATTR not in study.user_attrs
    assert {t.distributions["hidden_size"].high for t in study.trials} == {11}
    hidden = study.best_params["hidden_size"]
    side = "floor" if hidden == 10 else "ceiling"
    expected = f"best at the edge of its range: hidden size {hidden} at the {side} {hidden}"
    assert expected in result.stdout and "(--no-widen: not searched past)" in result.stdout
    parents, _ = study_runs("data-mlp")
    tags = mlflow.get_run(parents.iloc[0]["run_id"]).data.tags
    assert tags[names.RANGE_EDGES].startswith(expected)
    assert expected in tags["mlflow.note.content"]


def _best(study: optuna.Study) -> dict:
    from pipeline.tuning.search import edge_params

    return edge_params(study.best_trial)
