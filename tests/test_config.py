"""Option validation, on the config dataclasses themselves: every rule in milliseconds.

The CLI builds these from its options, so each message names the option a user typed; one
wiring case per command (tests/test_bad_input.py) shows the CLI turns them into one line.
"""

from __future__ import annotations

import pytest

from pipeline import architectures
from pipeline.config import ReapConfig, TrainConfig, parse_duration, train_config
from pipeline.errors import PipelineError
from pipeline.tune_config import MainConfig, TuneConfig

ARCHES = ", ".join(architectures.names())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"arch": "cnn"}, f"--arch must be one of {ARCHES} (got 'cnn')"),
        ({"preset": "fast"}, "--preset must be one of default, seed"),
        ({"learning_rate_schedule": "step"}, "--learning-rate-schedule must be one of"),
        ({"learning_rate": 0}, "--learning-rate must be > 0"),
        ({"learning_rate": -0.1}, "--learning-rate must be > 0"),
        ({"learning_rate": float("nan")}, "--learning-rate must be > 0"),
        ({"learning_rate": float("inf")}, "--learning-rate must be > 0"),
        ({"hidden_size": 0}, "--hidden-size must be a positive integer"),
        ({"epochs": 0}, "--epochs must be a positive integer"),
        ({"batch_size": -5}, "--batch-size must be a positive integer"),
        ({"max_steps": 0}, "--max-steps must be a positive integer"),
        ({"seed": -1}, "--seed must be between 0 and 4294967295"),
        ({"seed": 2**32}, "--seed must be between 0 and 4294967295"),
        ({"validation_fraction": 0}, "--validation-fraction must be between 0 and 1"),
        ({"validation_fraction": 1}, "--validation-fraction must be between 0 and 1"),
    ],
)
def test_train_options_are_checked(options, message):
    with pytest.raises(PipelineError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        train_config(**{"arch": "mlp", **options})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_trials": 0}, "--n-trials must be at least 1"),
        ({"sampler": "grid"}, "--sampler must be one of tpe, random"),
        ({"pruner": "sometimes"}, "--pruner must be one of halving, hyperband, median, none"),
        ({"search": "deep"}, "--search must be one of standard, wide"),
        ({"start_from": "notebook"}, "--start-from must be one of default, seed"),
        ({"folds": 0}, "--folds must be 1 to 10"),
        ({"folds": 11}, "--folds must be 1 to 10"),
        ({"arch": "cnn"}, f"--arch must be one of {ARCHES}, both"),
        ({"learning_rate_range": (0.1, 0.01)}, "--learning-rate-range needs 0 < LOW < HIGH"),
        ({"learning_rate_range": (0, 0.01)}, "--learning-rate-range needs 0 < LOW < HIGH"),
        ({"hidden_size_range": (0, 10)}, "--hidden-size-range needs 0 < LOW < HIGH"),
        ({"epochs_range": (3, 3)}, "--epochs-range needs 0 < LOW < HIGH"),
        ({"timeout_seconds": 0}, "--timeout must be > 0"),
        ({"trials_per_process": 0}, "--trials-per-process must be at least 1"),
        ({"heartbeat_seconds": 0}, "--heartbeat must be >= 1 second"),
        ({"storage": "optuna.db"}, "--storage 'optuna.db' is not a URL"),
        ({"validation_fraction": 1.5}, "--validation-fraction must be between 0 and 1"),
    ],
)
def test_tune_options_are_checked(options, message):
    with pytest.raises(PipelineError, match="^" + message.replace("(", r"\(")):
        TuneConfig(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"preset": "fast"}, "--preset must be one of default, seed"),
        ({"arch": "cnn"}, "--arch must be one of"),
        ({"n_trials": 0}, "--n-trials must be at least 1"),
    ],
)
def test_main_options_are_checked(options, message):
    with pytest.raises(PipelineError, match="^" + message):
        MainConfig(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stale_after": 0}, "--stale-after must be > 0 seconds"),
        ({"include_unbeating": True}, "--include-unbeating and --older-than DURATION go together"),
        ({"older_than": "2h"}, "--include-unbeating and --older-than DURATION go together"),
        ({"include_unbeating": True, "older_than": "soon"}, "--older-than must be a duration"),
    ],
)
def test_reap_options_are_checked(options, message):
    with pytest.raises(PipelineError, match="^" + message):
        ReapConfig(**options)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400)]
)
def test_durations(text, seconds):
    assert parse_duration("--older-than", text) == seconds
    assert ReapConfig(include_unbeating=True, older_than=text).unbeating_age() == seconds


@pytest.mark.parametrize("text", ["", "h", "-1h", "0", "1w", "nan", "inf"])
def test_malformed_durations_are_refused(text):
    with pytest.raises(PipelineError, match="--older-than must be a duration"):
        parse_duration("--older-than", text)


def test_valid_values_at_the_edges_are_accepted():
    train_config("mlp", seed=0, validation_fraction=0.01, max_steps=1, epochs=1)
    train_config("mlp", seed=2**32 - 1, validation_fraction=0.99)
    TuneConfig(n_trials=1, heartbeat_seconds=1, epochs_range=(1, 2), storage="journal:///x.log")
    ReapConfig(stale_after=0.5)


def test_every_preset_takes_its_values_from_the_registry():
    for arch, entry in architectures.REGISTRY.items():
        for preset, values in entry.presets.items():
            config = train_config(arch, preset)
            assert {key: getattr(config, key) for key in values} == values, (arch, preset)


def test_an_explicit_epoch_count_replaces_the_seed_step_budget():
    assert train_config("lstm", "seed").max_steps == 10_000
    config = train_config("lstm", "seed", epochs=3, max_steps=None)  # None: not given
    assert config.epochs == 3 and config.max_steps is None
    assert train_config("lstm", "seed", epochs=3, max_steps=50).max_steps == 50


def test_config_values_are_frozen():
    config = train_config("mlp")
    with pytest.raises(AttributeError):
        config.epochs = 3  # type: ignore[misc]


def test_a_resumed_run_rebuilds_its_config_from_its_params():
    config = train_config("lstm", "seed", learning_rate=0.003)
    params = {key: value for key, value in config.params().items() if key != "optimizer"}
    assert TrainConfig.from_params(config.params()) == config == TrainConfig(**params)
