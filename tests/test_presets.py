"""What a preset's settings do when it trains: optimizer, schedule, initialiser, step budget."""

from __future__ import annotations

import math

import pytest
from conftest import metric_steps, runs

from pipeline.config import train_config


def test_optimizer_param_is_what_trains():
    from pipeline import fitting

    config = train_config("mlp", "default", hidden_size=8)
    model = fitting.new_model(config, 100)
    assert config.params()["optimizer"] == type(model.optimizer).__name__.lower()


def test_cosine_schedule_sets_the_learning_rate_at_each_step():
    from pipeline import fitting

    config = train_config("lstm", "default", hidden_size=8, epochs=2, batch_size=10)
    model = fitting.new_model(config, 100)  # 10 steps an epoch, 20 in all
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    for step in (0, 5, 10, 15):
        optimizer.iterations.assign(step)
        expected = 0.5 * config.learning_rate * (1 + math.cos(math.pi * step / 20))
        assert float(optimizer.learning_rate) == pytest.approx(expected, rel=1e-5), step


def test_seed_preset_draws_from_unit_normal_and_uses_tf1_epsilon():
    from pipeline import fitting

    seed = fitting.new_model(train_config("mlp", "seed"), 100)
    default = fitting.new_model(train_config("mlp", "default"), 100)
    kernel = seed.get_layer("hidden_1").kernel.numpy()
    bias = seed.get_layer("hidden_1").bias.numpy()
    assert abs(kernel.std() - 1.0) < 0.02 and abs(bias.std() - 1.0) < 0.15
    assert default.get_layer("hidden_1").kernel.numpy().std() < 0.1
    assert seed.optimizer.epsilon == pytest.approx(1e-8)
    assert default.optimizer.epsilon == pytest.approx(1e-7)


def test_max_steps_trains_exactly_that_many_steps(cli, data_dir, tiny):
    result = cli("train", "--arch", "mlp", "--epochs", "3", "--max-steps", "11", *tiny.model)
    assert result.exit_code == 0, result.stderr
    run = runs().iloc[0]
    assert [step for step, _ in metric_steps(run["run_id"], "batch_loss")] == list(range(11))
    assert run["params.max_steps"] == "11"


def test_epochs_option_replaces_the_seed_presets_step_budget(cli, data_dir, tiny):
    result = cli("train", "--arch", "lstm", "--preset", "seed", "--epochs", "1", *tiny.model)
    assert result.exit_code == 0, result.stderr
    run = runs().iloc[0]
    assert run["params.epochs"] == "1" and "params.max_steps" not in run.dropna().index
    assert len(metric_steps(run["run_id"], "batch_loss")) == 9  # 270 images / 32
