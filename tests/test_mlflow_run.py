"""`mlflow run` entry points and experiments: the runs land where the user asked."""

from __future__ import annotations

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


def mlflow_run(workdir, entry: str, *params: str, experiment: str = "mnist"):
    args = [
        sys.executable,
        "-m",
        "mlflow",
        "run",
        str(REPO),
        "-e",
        entry,
        "--env-manager",
        "local",
        "--experiment-name",
        experiment,
    ]
    for param in params:
        args += ["-P", param]
    return subprocess.run(
        args, cwd=workdir, env=subprocess_env(workdir), capture_output=True, text=True, timeout=900
    )


@pytest.mark.slow
def test_mlflow_run_train_logs_into_the_run_it_creates(workdir, data_dir):
    done = mlflow_run(
        workdir,
        "train",
        "arch=mlp",
        "epochs=2",
        "hidden-size=16",
        f"data-dir={data_dir}",
        f"checkpoint-dir={workdir / 'ck'}",
        "progress=false",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    frame = runs()
    assert len(frame) == 1  # no stray or duplicate run
    row = frame.iloc[0]
    assert row["status"] == "FINISHED" and row["tags.pipeline.stage"] == "train"
    assert row["tags.mlflow.project.entryPoint"] == "train"
    assert row["params.learning_rate"] == "0.001"  # resolved from the preset
    assert row["params.hidden_size"] == "16" and row["params.hidden-size"] == "16"
    # 270 images, batches of 128 (the preset): 3 steps an epoch
    assert len(mlflow.MlflowClient().get_metric_history(row["run_id"], "batch_loss")) == 6


@pytest.mark.slow
def test_mlflow_run_train_with_preset_values_not_given(workdir, data_dir):
    """Options left to the preset are logged once, with the value the run used."""
    done = mlflow_run(
        workdir,
        "train",
        "arch=mlp",
        "hidden-size=8",
        f"data-dir={data_dir}",
        f"checkpoint-dir={workdir / 'ck'}",
        "progress=false",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    row = runs().iloc[0]
    assert row["status"] == "FINISHED"
    resolved = (row["params.epochs"], row["params.seed"], row["params.preset"])
    assert resolved == ("20", "0", "default")


@pytest.mark.slow
def test_mlflow_run_main_builds_one_parent_with_children(workdir, source):
    done = mlflow_run(
        workdir,
        "main",
        "arch=mlp",
        f"source={source}",
        f"data-dir={workdir / 'data'}",
        f"checkpoint-dir={workdir / 'ck'}",
        f"report-dir={workdir / 'reports'}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    frame = runs()
    parents = frame[frame["tags.pipeline.stage"] == "main"]
    assert len(parents) == 1
    parent = parents.iloc[0]
    assert parent["tags.mlflow.project.entryPoint"] == "main"
    kids = children(parent["run_id"])
    assert sorted(kids["tags.pipeline.stage"]) == ["download", "evaluate", "report", "train"]
    assert len(frame) == 5 and set(frame["status"]) == {"FINISHED"}


@pytest.mark.slow
def test_mlflow_run_main_puts_every_run_in_the_experiment_asked_for(workdir, source):
    def checkout() -> set[str]:
        status = ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"]
        done = subprocess.run(status, cwd=REPO, capture_output=True, text=True, check=True)
        return {line for line in done.stdout.splitlines() if "__pycache__" not in line}

    before = checkout()
    done = mlflow_run(workdir, "main", "arch=mlp", f"source={source}", experiment="elsewhere")
    assert done.returncode == 0, done.stderr[-3000:]
    assert checkout() == before  # nothing written into the project checkout
    assert (workdir / "data" / "mnist" / "mnist.npz").is_file()  # beside the store instead
    assert (workdir / "reports" / "report.md").is_file()
    frame = runs("elsewhere")
    assert len(frame) == 5 and set(frame["status"]) == {"FINISHED"}
    parent = frame[frame["tags.pipeline.stage"] == "main"].iloc[0]["run_id"]
    kids = frame[frame["tags.mlflow.parentRunId"] == parent]
    assert sorted(kids["tags.pipeline.stage"]) == ["download", "evaluate", "report", "train"]
    assert len(runs("mnist")) == 0 if mlflow.get_experiment_by_name("mnist") else True


def test_runs_go_to_the_experiment_id_in_the_environment(
    cli, workdir, data_dir, monkeypatch, tiny
):
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    experiment_id = mlflow.create_experiment("by-id")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    result = cli(*tiny.train)
    assert result.exit_code == 0, result.stderr
    run_id = runs("by-id").iloc[0]["run_id"]
    assert cli("evaluate", "--run-id", run_id, "--no-register").exit_code == 0
    assert cli("report", "--output-dir", "out").exit_code == 0
    stages = sorted(runs("by-id")["tags.pipeline.stage"])
    assert stages == ["evaluate", "report", "train"]


def test_the_project_describes_its_own_experiment_not_mlflows_default(cli, workdir, monkeypatch):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "Default")
    assert cli("init-stores").exit_code == 0
    client = mlflow.MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    assert "mlflow.note.content" not in client.get_experiment("0").tags
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "mine")
    assert cli("init-stores").exit_code == 0
    assert "LSTM" in client.get_experiment_by_name("mine").tags["mlflow.note.content"]
