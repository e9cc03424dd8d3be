"""The house's promises: one registry, defaults written once, override rules, named features."""

from __future__ import annotations

import fnmatch
import math
import re
import subprocess
import sys
import tomllib

import numpy as np
import pytest
from conftest import REPO, metric_steps, one_line_error, runs, subprocess_env

from pipeline import architectures, data
from pipeline.config import train_config


def readme() -> str:
    return (REPO / "README.md").read_text()


def preset_facts(arch: str, values: dict) -> list[str]:
    """What the README's preset table must say of one preset (the code is the truth)."""
    rate = f"{values['learning_rate']:.0e}".replace("e-0", "e-")
    size = values["hidden_size"]
    facts = [f"{size}-{size} ReLU" if arch == "mlp" else f"LSTM {size}", f"Adam({rate}"]
    facts.append(f"batch {values['batch_size']}")
    if values.get("max_steps"):
        facts.append(f"{values['max_steps']:,} steps".replace(",", " "))
    else:
        facts.append(f"{values['epochs']} epochs")
    if values.get("learning_rate_schedule") == "cosine":
        facts.append("cosine decay")
    return facts


def test_readme_preset_table_is_the_code():
    text = readme()
    for preset in architectures.preset_names():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{preset}`"))
        cells = [cell.strip() for cell in row.strip("|").split("|")][1:]
        assert len(cells) == len(architectures.names())
        for arch, cell in zip(architectures.names(), cells, strict=True):
            values = architectures.REGISTRY[arch].presets[preset]
            for fact in preset_facts(arch, values):
                assert fact in cell, (preset, arch, fact, cell)
            assert ("cosine" in cell) == (values.get("learning_rate_schedule") == "cosine")


def test_readme_names_every_option_of_every_stage():
    import typer.main

    from pipeline.cli.app import app

    text = readme()
    for name, command in typer.main.get_command(app).commands.items():
        for param in command.params:
            for option in param.opts:
                if option != "--help":
                    assert f"`{option}" in text or f"{option} " in text, (name, option)


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


def test_validation_split_keeps_each_class_share_within_one_image():
    sizes = [40, 400, 73, 150, 260, 91, 333, 57, 120, 210]
    labels = np.repeat(np.arange(10), sizes).astype(np.uint8)
    rng = np.random.default_rng(5)
    labels = labels[rng.permutation(len(labels))]
    images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    dataset = data.Dataset(images, labels, images[:1], labels[:1], "d", False, "s")
    for seed in range(3):
        splits = data.split_train_validation(dataset, 0.1, seed)
        for label, size in enumerate(sizes):
            held_out = int((splits.y_val == label).sum())
            assert abs(held_out - 0.1 * size) <= 1, (seed, label, held_out)
        assert len(splits.y_val) + len(splits.y_train) == len(labels)


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


def test_resume_with_options_that_change_the_run_is_refused(cli, data_dir):
    result = cli("train", "--resume", "0123456789abcdef", "--arch", "lstm", "--epochs", "2")
    assert result.exit_code == 1
    message = one_line_error(result)
    assert "--arch, --epochs" in message and "--resume" in message
    assert len(runs()) == 0


NEW_ARCH = """
import dataclasses, sys
from pipeline import architectures
entry = architectures.REGISTRY["mlp"]
architectures.REGISTRY["wide"] = dataclasses.replace(
    entry, name="wide", registered_model="mnist-wide", notebook_accuracy=0.5)
from pipeline.cli.app import main
main(sys.argv[1:])
"""


@pytest.mark.slow
def test_a_new_architecture_is_one_registry_entry(workdir, data_dir, tiny):
    """Add an entry in a child process: help, train, evaluate and report pick it up."""

    def pipeline(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", NEW_ARCH, *args],
            cwd=workdir,
            env=subprocess_env(workdir),
            capture_output=True,
            text=True,
            timeout=600,
        )

    assert "wide" in re.sub(r"\s+", " ", pipeline("train", "--help").stdout)
    trained = pipeline("train", "--arch", "wide", "--epochs", "1", *tiny.model)
    assert trained.returncode == 0, trained.stderr
    run_id = runs().iloc[0]["run_id"]
    evaluated = pipeline("evaluate", "--run-id", run_id)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "mnist-wide" in evaluated.stdout
    reported = pipeline("report", "--output-dir", str(workdir / "out"))
    assert reported.returncode == 0, reported.stderr
    assert "| wide | default preset |" in (workdir / "out" / "report.md").read_text()


def test_every_package_folder_ships_in_the_distribution():
    """A `pip install .` (not editable) holds every subpackage: tracking/ and tuning/ too."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = setuptools["packages"]
    inits = REPO.glob("pipeline/**/__init__.py")
    folders = {".".join(init.parent.relative_to(REPO).parts) for init in inits}
    assert {"pipeline", "pipeline.tracking", "pipeline.tuning"} <= folders
    if isinstance(packages, list):
        shipped = set(packages)
    else:
        patterns = packages["find"]["include"]
        shipped = {name for name in folders if any(fnmatch.fnmatch(name, p) for p in patterns)}
    assert folders <= shipped
