"""The main job: one parent run, finished steps reused, the tuned path, a clean clone."""

from __future__ import annotations

import re
import subprocess
import sys

import mlflow
import pytest
from conftest import (
    REPO,
    children,
    runs,
    subprocess_env,
)


@pytest.mark.slow
def test_main_reuses_finished_steps_and_reruns_changed_ones(cli, workdir, source):
    args = ("main", "--arch", "mlp", "--source", source, "--report-dir", workdir / "reports")
    first = cli(*args)
    assert first.exit_code == 0, first.stderr
    parent = runs()
    parent = parent[parent["tags.pipeline.stage"] == "main"].iloc[0]
    assert parent["status"] == "FINISHED"
    kids = children(parent["run_id"])
    assert sorted(kids["tags.pipeline.stage"]) == ["download", "evaluate", "report", "train"]
    assert "reusing" not in first.stdout
    assert re.search(
        r"^download: \d+ training and \d+ test images in .*; run \w{32}$", first.stdout, re.M
    )
    # Every run, the experiment and the registered model say what they are.
    notes = dict(zip(kids["tags.pipeline.stage"], kids["tags.mlflow.note.content"], strict=True))
    evaluated = kids[kids["tags.pipeline.stage"] == "evaluate"].iloc[0]
    accuracy = evaluated["metrics.test_accuracy"]
    assert f"test accuracy {accuracy:.4f}" in notes["evaluate"]
    assert notes["download"].startswith("Downloaded and verified MNIST")
    assert notes["train"].startswith("Trained mlp-default")
    assert "Validation accuracy" in notes["train"]
    assert f"mlp {accuracy:.4f} (default preset)" in notes["report"]
    assert parent["metrics.mlp_test_accuracy"] == accuracy
    assert f"Test accuracy: mlp {accuracy:.4f}" in parent["tags.mlflow.note.content"]
    client = mlflow.MlflowClient()
    experiment = client.get_experiment(parent["experiment_id"])
    assert "LSTM" in experiment.tags["mlflow.note.content"]
    assert "@champion" in client.get_registered_model("mnist-mlp").description
    assert "test accuracy" in client.get_model_version("mnist-mlp", "1").description

    second = cli(*args)
    assert second.exit_code == 0, second.stderr
    assert second.stdout.count("reusing") == 3  # download, train, evaluate
    assert "4 steps, 3 reused" in second.stdout
    main_runs = runs()
    latest_main = main_runs[main_runs["tags.pipeline.stage"] == "main"].iloc[0]
    assert latest_main["tags.pipeline.step.train_mlp"].endswith("(reused)")
    # Only the report is a new child run; the reused steps are named by the step tags.
    assert len(children(latest_main["run_id"])) == 1
    assert "1 steps as child runs, 3 reused" in latest_main["tags.mlflow.note.content"]
    frame = runs()
    assert len(frame[frame["tags.pipeline.stage"] == "train"]) == 1

    third = cli(*args, "--preset", "seed")
    assert third.exit_code == 0, third.stderr
    assert "train mlp: reusing" not in third.stdout
    frame = runs()
    trains = frame[frame["tags.pipeline.stage"] == "train"]
    assert sorted(trains["params.preset"]) == ["default", "seed"]
    assert (workdir / "reports" / "report.md").is_file()


@pytest.mark.slow
def test_main_tune_without_a_real_winner_keeps_the_preset(cli, workdir, source):
    args = (
        "main",
        "--arch",
        "mlp",
        "--source",
        source,
        "--storage",
        f"sqlite:///{workdir / 'optuna.db'}",
    )
    assert cli(*args).exit_code == 0
    # One trial: the study's best is its trial 0, the preset itself, so nothing beat it.
    tuned = cli(*args, "--tune", "--n-trials", "1")
    assert tuned.exit_code == 0, tuned.stderr
    assert "tune mlp: no configuration beat trial 0 (the default preset, " in tuned.stdout
    assert (
        "by its validation curve): it is the best; so no tuned model: training the default "
        "preset" in tuned.stdout
    )
    assert "train mlp: reusing" in tuned.stdout  # the first main's preset run
    trains = runs()[runs()["tags.pipeline.stage"] == "train"]
    assert len(trains) == 1 and "tags.pipeline.tuned_from" not in trains  # no tuned run
    text = (workdir / "reports" / "report.md").read_text()
    assert "| mlp | default preset |" in text and "| mlp | tuned best" not in text
    versions = mlflow.MlflowClient().search_model_versions("name = 'mnist-mlp'")
    assert len(versions) == 1  # the champion stays


@pytest.mark.slow
def test_a_run_the_way_make_run_runs_it_leaves_the_clone_clean(tmp_path, source):
    """`make run` runs `pipeline main --arch both` in the checkout: whatever it writes (data,
    stores, checkpoints, the report) is git-ignored, so the clone stays clean and its runs
    record a clean commit; a change to the code then shows as dirty."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = {**subprocess_env(clone), "PYTHONPATH": str(clone)}  # the clone's own package
    env["MLFLOW_TRACKING_URI"] = "sqlite:///mlflow.db"  # MLflow's default, as make run uses it

    def main(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pipeline", "main", "--arch", "both", *args],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )

    done = main("--source", str(source))
    assert done.returncode == 0, done.stderr[-3000:]
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True
    )
    assert status.stdout == "", status.stdout
    assert (clone / "reports" / "report.md").is_file()
    mlflow.set_tracking_uri(f"sqlite:///{clone / 'mlflow.db'}")
    clean = mlflow.search_runs(search_all_experiments=True)
    assert set(clean["tags.mlflow.source.git.dirty"]) == {"false"}
    with (clone / "pipeline" / "errors.py").open("a") as handle:
        handle.write("\n# a local change\n")
    assert main("--source", str(source)).returncode == 0  # new code: no step is reused
    frame = mlflow.search_runs(search_all_experiments=True)
    changed = frame[~frame["run_id"].isin(clean["run_id"])]
    assert len(changed) and set(changed["tags.mlflow.source.git.dirty"]) == {"true"}


def test_main_shows_a_line_per_epoch_when_not_on_a_terminal(cli, workdir, source, capsys):
    """No terminal (a log, CI, a pipe): one line per epoch instead of silence while training."""
    from pipeline import architectures
    from pipeline.cli import console

    epochs = architectures.REGISTRY["mlp"].presets["default"]["epochs"]
    result = cli("main", "--source", source, "--report-dir", workdir / "out")
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("train mlp epoch")]
    assert len(lines) == epochs, result.stderr
    pattern = r"train mlp epoch (\d+)/(\d+): val_accuracy \d\.\d{4}, (\d+m)?\d+s in, ~"
    assert all(re.match(pattern, line) for line in lines), lines
    assert lines[-1].startswith(f"train mlp epoch {epochs}/{epochs}:") and "~0s left" in lines[-1]
    # The longest label a step has, and long durations, still fit 80 columns.
    longest = console.EpochLines("train lstm baseline")
    longest.start(epochs=100, steps=1, first_epoch=0)
    longest.started -= 99 * 3600
    longest.epoch_end(1, {"val_accuracy": 0.5})
    assert max(len(line) for line in capsys.readouterr().err.splitlines()) <= 80


@pytest.mark.slow
def test_main_tune_over_a_study_made_otherwise_says_what_main_can_do(cli, workdir, source, tiny):
    """A seed-start study in --storage: `main --tune` (which has neither --start-from nor
    --study-name) says to give it another --storage, or to go on with `pipeline tune`."""
    from conftest import one_line_error

    storage = f"sqlite:///{workdir / 'optuna.db'}"
    assert cli("download", "--source", source).exit_code == 0
    tuned = cli(
        "tune", "--storage", storage, "--start-from", "seed", "--n-trials", "1", *tiny.tune
    )
    assert tuned.exit_code == 0, tuned.stderr
    result = cli("main", "--tune", "--storage", storage, "--source", source)
    assert result.exit_code == 1
    message = one_line_error(result)
    assert "give main another --storage" in message, message
    assert "pipeline tune --start-from seed" in message and "--study-name" not in message
