"""The train stage on synthetic data: params, per-step metrics, model, determinism, errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import (
    PIPELINE,
    metric_steps,
    one_line_error,
    require_shared_mnist,
    run_to_end,
    runs,
    subprocess_env,
)


def train(cli, *args: str):
    result = cli("train", *args)
    assert result.exit_code == 0, result.stderr
    return runs().iloc[0]


@pytest.mark.parametrize("arch", ["mlp", "lstm"])
def test_params_and_every_step_logged(cli, data_dir, arch, tiny):
    row = train(cli, "--arch", arch, "--epochs", "2", *tiny.model, "--learning-rate", "0.01")
    run_id = row["run_id"]
    assert row["status"] == "FINISHED"
    expected = {
        "arch": arch,
        "preset": "default",
        "learning_rate": "0.01",
        "hidden_size": "16",
        "epochs": "2",
        "batch_size": "32",
        "seed": "0",
        "validation_fraction": "0.1",
        "optimizer": "adam",
        "learning_rate_schedule": "constant" if arch == "mlp" else "cosine",
    }
    assert {key: row[f"params.{key}"] for key in expected} == expected
    assert row["tags.pipeline.stage"] == "train" and row["tags.pipeline.arch"] == arch
    # 300 images, 30 held out -> 270 to train -> 9 batches of 32 per epoch, 18 steps in all
    for key in ("batch_loss", "batch_accuracy"):  # each batch's own value, at every step
        assert [step for step, _ in metric_steps(run_id, key)] == list(range(18))
    accuracies = [value for _, value in metric_steps(run_id, "batch_accuracy")]
    assert all(
        value * 32 == round(value * 32) or value * 14 == round(value * 14) for value in accuracies
    )
    epoch_keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_seconds")
    for key in (*epoch_keys, "samples_per_second"):
        assert [step for step, _ in metric_steps(run_id, key)] == [8, 17]
    # An epoch's training accuracy is the mean over its batches (270 images), not one batch's.
    epoch_mean = sum(accuracies[9:18][:8]) * 32 / 270 + accuracies[17] * 14 / 270
    assert dict(metric_steps(run_id, "train_accuracy"))[17] == pytest.approx(epoch_mean, abs=1e-4)
    run = mlflow.get_run(run_id)
    digest = json.loads((data_dir / "manifest.json").read_text())["digest"]
    assert run.data.tags["pipeline.data_digest"] == digest
    from pipeline.data import part_digest

    cut = lambda part: part_digest(digest, part, 0.1, 0)  # noqa: E731
    inputs = {item.dataset.name: item.dataset.digest for item in run.inputs.dataset_inputs}
    assert inputs == {"mnist-train": cut("training"), "mnist-validation": cut("validation")}
    artifacts = {item.path for item in mlflow.MlflowClient().list_artifacts(run_id)}
    assert "learning_curves.png" in artifacts
    # The logged model: named for what it is, at its step, with the last epoch's metrics only.
    model = mlflow.get_logged_model(run.data.tags["pipeline.model_uri"].removeprefix("models:/"))
    assert (model.name, model.source_run_id) == (f"{arch}-default-lr0_01-h16-ep2-b32", run_id)
    assert [output.step for output in run.outputs.model_outputs] == [18]
    linked = {(m.key, m.step, m.value, m.dataset_name, m.dataset_digest) for m in model.metrics}
    expected = {
        (key, 17, dict(metric_steps(run_id, key))[17], dataset, cut(part))
        for key, dataset, part in (
            ("train_loss", "mnist-train", "training"),
            ("train_accuracy", "mnist-train", "training"),
            ("val_loss", "mnist-validation", "validation"),
            ("val_accuracy", "mnist-validation", "validation"),
        )
    }
    assert linked == expected
    description = model.tags["mlflow.note.content"]
    assert "0-255" in description and "of size 16 after 18 training steps" in description
    assert "256" not in description  # the size it has, not the preset's
    for key in ("val_accuracy", "train_loss"):  # linking added no point to the run's history
        assert [step for step, _ in metric_steps(run_id, key)][-2:] in ([8, 17], [16, 17])


def test_early_stopping_keeps_the_model_of_the_best_epoch(cli, data_dir, tiny):
    """--epochs is the ceiling: the logged model is the one after the epoch (from 2 on) of best
    validation accuracy, the latest on a tie, as a study's trials choose."""
    from pipeline import data
    from pipeline.early_stopping import best_epoch

    row = train(cli, "--arch", "mlp", *tiny.model, "--epochs", "8", "--learning-rate", "0.15")
    run_id = row["run_id"]
    history = metric_steps(run_id, "val_accuracy")
    curve = [value for _, value in history]
    chosen = best_epoch(curve, (2, 8))
    assert chosen < 8, curve  # the case shows whether the best epoch's weights are kept
    run = mlflow.get_run(run_id)
    assert run.data.params["early_stopping"] == "True"
    assert run.data.tags["pipeline.best_epoch"] == str(chosen)
    assert f"the one after epoch {chosen} of 8" in run.data.tags["mlflow.note.content"]
    # The run's latest val_accuracy is the kept model's (logged again at the last step).
    assert run.data.metrics["val_accuracy"] == pytest.approx(curve[chosen - 1])
    assert history[-1] == (history[-2][0], pytest.approx(curve[chosen - 1]))
    step = history[chosen - 1][0] + 1  # steps done after that epoch
    assert [output.step for output in run.outputs.model_outputs] == [step]
    model = mlflow.pyfunc.load_model(run.data.tags["pipeline.model_uri"])
    splits = data.split_train_validation(data.load_dataset(data_dir), 0.1, 0)
    accuracy = (model.predict(splits.x_val).argmax(axis=1) == splits.y_val).mean()
    assert accuracy == pytest.approx(curve[chosen - 1], abs=1e-6)
    full = train(
        cli,
        "--arch",
        "mlp",
        *tiny.model,
        "--epochs",
        "8",
        "--learning-rate",
        "0.05",
        "--no-early-stopping",
    )
    assert "pipeline.best_epoch" not in mlflow.get_run(full["run_id"]).data.tags


def test_logged_model_predicts_digits_from_raw_images(cli, data_dir, workdir, tiny):
    row = train(cli, "--arch", "mlp", "--epochs", "2", *tiny.model, "--learning-rate", "0.01")
    from pipeline import checkpoints, fitting
    from pipeline.config import train_config

    with np.load(data_dir / "mnist.npz") as arrays:
        images, labels = arrays["test_images"].astype(np.float32), arrays["test_labels"]
    served = mlflow.pyfunc.load_model(row["tags.pipeline.model_uri"]).predict(images)
    assert served.shape == (100, 10)
    np.testing.assert_allclose(served.sum(axis=1), 1.0, rtol=1e-4)
    config = train_config("mlp", epochs=2, batch_size=32, hidden_size=16, learning_rate=0.01)
    checkpoint = fitting.new_model(config, 270)
    checkpoints.restore_into(checkpoint, workdir / "checkpoints" / row["run_id"])
    assert (served.argmax(1) == checkpoint.predict(images).argmax(1)).all()
    assert (served.argmax(1) == labels).mean() > 0.5  # the synthetic digits are easy
    model = mlflow.pyfunc.load_model(row["tags.pipeline.model_uri"])
    nan, bright, negative = images[:2].copy(), images[:2].copy(), images[:2].copy()
    nan[0, 3, 3], bright[1, 0, 0], negative[0, 5, 5] = np.nan, 256.0, -1.0
    refused = {
        "expected finite pixel intensities 0-255, got 1 NaN or infinite values": nan,
        "expected pixel intensities 0-255, got values from 0 to 256": bright,
        "expected pixel intensities 0-255, got values from -1 to": negative,
        "expected a batch of 28x28 images (or rows of 784 pixels), got shape (2, 28, 27)": images[
            :2, :, :27
        ],
    }
    for reason, bad in refused.items():
        with pytest.raises(ValueError) as raised:
            model.predict(bad)
        assert str(raised.value).startswith(reason), str(raised.value)
    assert model.predict(images[:2].reshape(2, 784)).shape == (2, 10)  # flattened rows


@pytest.mark.slow
def test_same_seed_same_metrics(cli, data_dir, tiny):
    histories = []
    for seed in ("3", "3", "4"):
        train(cli, "--arch", "lstm", "--epochs", "2", *tiny.model, "--seed", seed)
        run_id = runs().iloc[0]["run_id"]
        histories.append(metric_steps(run_id, "batch_loss") + metric_steps(run_id, "val_loss"))
    assert histories[0] == histories[1]
    assert histories[0] != histories[2]


def test_the_summary_links_the_run_in_the_uis_model_training_view(cli, data_dir, tiny):
    result = cli("train", "--arch", "mlp", "--epochs", "1", *tiny.model)
    assert result.exit_code == 0, result.stderr
    run = runs().iloc[0]
    page = f"/#/experiments/{run['experiment_id']}/runs/{run['run_id']}"
    assert f"{page}?workflowType=machine_learning" in result.stdout
    assert "pipeline ui" in result.stdout  # the project's own command, on the project's store


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("--learning-rate", "0"), "--learning-rate must be > 0"),  # the config's check
        (("--learning-rate", "fast"), "Invalid value for '--learning-rate'"),  # Typer's
        (("--bogus",), "No such option: --bogus"),
    ],
)
def test_invalid_options(cli, data_dir, args, fragment):
    result = cli("train", "--no-progress", *args)
    assert result.exit_code != 0
    assert fragment in one_line_error(result)
    assert len(runs()) == 0


def test_missing_data(cli, workdir):
    result = cli("train", "--no-progress", "--data-dir", workdir / "nothing")
    assert result.exit_code != 0
    assert "run `pipeline download" in one_line_error(result)
    assert len(runs()) == 0


def test_nan_loss_fails_the_run(cli, data_dir, tiny):
    result = cli(
        "train",
        "--arch",
        "mlp",
        "--preset",
        "seed",
        "--learning-rate",
        "1e12",
        "--epochs",
        "2",
        *tiny.model[:2],
        "--no-progress",
    )
    assert result.exit_code == 1
    assert "loss became NaN" in one_line_error(result)
    run = runs().iloc[0]
    assert run["status"] == "FAILED"
    assert "loss became NaN" in run["tags.pipeline.failure_reason"]


@pytest.mark.slow
def test_sigterm_kills_run_and_resume_completes_it(workdir, data_dir):
    env = subprocess_env(workdir)
    args = [sys.executable, "-m", "pipeline", "train", "--arch", "mlp", "--epochs", "40"]
    args += ["--batch-size", "8", "--hidden-size", "16", "--no-progress"]
    process = subprocess.Popen(args, cwd=workdir, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    states = list((workdir / "checkpoints").glob("*/state.json"))
    while not states and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
        states = list((workdir / "checkpoints").glob("*/state.json"))
    time.sleep(0.3)  # into a later epoch
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "KILLED" in stderr.strip().splitlines()[-1]
    run = runs().iloc[0]
    run_id = run["run_id"]
    assert run["status"] == "KILLED"
    state = json.loads((workdir / "checkpoints" / run_id / "state.json").read_text())
    assert 1 <= state["epoch"] < 40
    logged = metric_steps(run_id, "batch_loss")
    assert len(logged) >= state["step"] > 0

    resumed = run_to_end(workdir, *PIPELINE, "train", "--resume", run_id, "--no-progress", env=env)
    assert resumed.returncode == 0, resumed.stderr
    frame = runs()
    assert len(frame) == 1 and frame.iloc[0]["status"] == "FINISHED"
    steps = [step for step, _ in metric_steps(run_id, "batch_loss")]
    assert steps == list(range(len(steps)))  # one value per step, none lost or repeated
    # The interrupted epoch was trained again, not finished: every epoch ends where an
    # uninterrupted run's does.
    per_epoch = len(steps) // 40
    assert len(steps) == 40 * per_epoch
    ends = [step for step, _ in metric_steps(run_id, "val_accuracy")]
    assert ends == [per_epoch * epoch - 1 for epoch in range(1, 41)], ends
    assert mlflow.get_run(run_id).data.params["epochs"] == "40"


@pytest.mark.slow
@pytest.mark.parametrize(
    "arch, args, floor",
    [
        ("mlp", ("--epochs", "2"), 0.93),
        ("lstm", ("--max-steps", "300"), 0.80),
    ],
)
def test_short_real_run(cli, workdir, arch, args, floor):
    assert cli("download", "--source", require_shared_mnist()).exit_code == 0
    result = cli("train", "--arch", arch, *args, "--no-progress")
    assert result.exit_code == 0, result.stderr
    row = runs().iloc[0]
    assert row["metrics.val_accuracy"] > floor
    assert row["status"] == "FINISHED"


@pytest.mark.slow
def test_log_checkpoints_logs_each_epochs_model_with_its_own_metrics(cli, data_dir, tiny):
    row = train(cli, "--arch", "mlp", "--epochs", "2", *tiny.model, "--log-checkpoints")
    run = mlflow.get_run(row["run_id"])
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list"
    )
    by_name = {model.name: model for model in models}
    name = "mlp-default-h16-ep2-b32"
    assert set(by_name) == {name, f"{name}-epoch1", f"{name}-epoch2"}
    steps = {(o.model_id, o.step) for o in run.outputs.model_outputs}
    assert steps == {
        (by_name[f"{name}-epoch1"].model_id, 9),
        (by_name[f"{name}-epoch2"].model_id, 18),
        (by_name[name].model_id, 18),
    }
    val = dict(metric_steps(row["run_id"], "val_accuracy"))
    for model, step in ((by_name[f"{name}-epoch1"], 8), (by_name[name], 17)):
        linked = {m.key: (m.step, m.value) for m in model.metrics}
        assert linked["val_accuracy"] == (step, val[step])
    assert row["tags.pipeline.model_uri"] == f"models:/{by_name[name].model_id}"


@pytest.mark.slow
def test_pipeline_script_runs_carry_the_git_commit_and_code_hash(workdir, data_dir, tiny):
    """The virtualenv's `pipeline` launcher is git-ignored; the run still names its commit."""
    repo = Path(__file__).resolve().parents[1]
    git = lambda *args: subprocess.run(  # noqa: E731
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    launcher = Path(sys.executable).parent / "pipeline"
    done = subprocess.run(
        [str(launcher), "train", "--arch", "mlp", *tiny.model, "--epochs", "1"],
        cwd=workdir,
        env=subprocess_env(workdir),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    from pipeline import provenance

    tags = mlflow.get_run(runs().iloc[0]["run_id"]).data.tags
    assert tags["mlflow.source.git.commit"] == git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=all", *provenance.CODE_PATHS))
    assert tags["mlflow.source.git.dirty"] == str(dirty).lower()
    assert tags["pipeline.code_hash"] == provenance.code_hash()


@pytest.mark.slow
def test_system_metrics_are_opt_in(cli, data_dir, monkeypatch, tiny):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")
    plain = train(cli, "--arch", "mlp", "--epochs", "2", *tiny.model)
    assert not [key for key in plain.index if key.startswith("metrics.system/")]
    try:
        recorded = train(cli, "--arch", "lstm", "--epochs", "2", *tiny.model, "--system-metrics")
    finally:
        mlflow.disable_system_metrics_logging()  # the option set it for this process
    keys = {key for key in recorded.index if key.startswith("metrics.system/")}
    assert {
        "metrics.system/cpu_utilization_percentage",
        "metrics.system/system_memory_usage_megabytes",
    } <= keys


def test_a_copy_inside_another_checkout_claims_no_commit(tmp_path):
    """Installed into a virtualenv inside the user's own git project, the package is not that
    project's code: its runs carry the code hash but no commit."""
    repo = Path(__file__).resolve().parents[1]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    site = tmp_path / ".venv" / "site-packages"
    shutil.copytree(repo / "pipeline", site / "pipeline")
    who = {
        f"GIT_{role}_{key}": value
        for role in ("AUTHOR", "COMMITTER")
        for key, value in (("NAME", "u"), ("EMAIL", "u@example.org"))
    }
    commit = ["git", "-C", str(tmp_path), "commit", "-q", "--allow-empty", "-m", "user"]
    subprocess.run(commit, check=True, env={**os.environ, **who})
    done = subprocess.run(
        [sys.executable, "-c", "from pipeline import provenance; print(provenance.provenance())"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "code_hash='" in done.stdout and "git_commit=None" in done.stdout
