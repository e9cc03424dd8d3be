"""Faults: killed processes, lost or unreachable tracking servers, an unwritable artifact store."""

from __future__ import annotations

import signal
import subprocess
import time

import mlflow
import pytest
from conftest import (
    PIPELINE,
    closed_port_url,
    free_port,
    metric_steps,
    one_line_error,
    run_to_end,
    runs,
    start,
    start_server,
    stop_server,
    subprocess_env,
    wait_for,
)

# A train process for a test to kill or cut off: small batches keep it busy for a while.
KILLABLE_TRAIN = [
    *PIPELINE,
    "train",
    "--arch",
    "mlp",
    "--hidden-size",
    "16",
    "--batch-size",
    "8",
    "--no-progress",
]


def running_run_id():
    frame = runs()
    running = frame[frame["status"] == "RUNNING"] if len(frame) else frame
    return running.iloc[0]["run_id"] if len(running) else None


@pytest.mark.slow
def test_sigkilled_run_is_reaped_but_a_live_run_is_not(cli, workdir, data_dir, monkeypatch):
    env = {**subprocess_env(workdir), "PIPELINE_RUN_HEARTBEAT_SECONDS": "1"}
    victim = subprocess.Popen([*KILLABLE_TRAIN, "--epochs", "500"], cwd=workdir, env=env)
    dead_run = wait_for(running_run_id, 120, "the run to start")
    wait_for(lambda: list(workdir.glob("checkpoints/*/state.json")), 120, "a checkpoint")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert mlflow.get_run(dead_run).info.status == "RUNNING"  # what SIGKILL leaves behind

    live = subprocess.Popen([*KILLABLE_TRAIN, "--epochs", "500"], cwd=workdir, env=env)
    try:
        live_run = wait_for(
            lambda: next(iter(set(runs()["run_id"]) - {dead_run}), None), 120, "a second run"
        )
        time.sleep(5)  # the dead run misses four heartbeats, the live one keeps beating
        monkeypatch.setenv("PIPELINE_RUN_HEARTBEAT_SECONDS", "1")
        result = cli("reap")  # the live run's own start may have reaped the dead one already
        assert result.exit_code == 0, result.stderr
        assert live_run not in result.stdout + result.stderr
        assert mlflow.get_run(dead_run).info.status == "KILLED"
        reason = mlflow.get_run(dead_run).data.tags["pipeline.failure_reason"]
        assert reason.startswith("reaped: no heartbeat")
        assert mlflow.get_run(live_run).info.status == "RUNNING"
    finally:
        live.send_signal(signal.SIGTERM)
        live.wait(timeout=60)
    assert mlflow.get_run(live_run).info.status == "KILLED"


def test_unreachable_tracking_server_fails_fast(workdir, data_dir):
    env = {**subprocess_env(workdir), "MLFLOW_TRACKING_URI": closed_port_url().rstrip("/")}
    started = time.time()
    done = subprocess.run(
        [*KILLABLE_TRAIN, "--epochs", "1"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Generous for a loaded 2-core machine, yet far below MLflow's own retry schedule (7 retries
    # with backoff: minutes), which the stage caps; a lost cap turns this red.
    assert time.time() - started < 90
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: cannot use tracking store http://127.0.0.1:"), done.stderr
    assert "Traceback" not in done.stderr
    assert not (workdir / "checkpoints").exists()


def test_unwritable_artifact_store_fails_the_run(cli, workdir, data_dir):
    (workdir / "mlruns").write_text("a file where MLflow wants its artifact folder")
    result = cli("train", "--arch", "mlp", "--epochs", "1", "--hidden-size", "8", "--no-progress")
    assert result.exit_code == 1
    message = one_line_error(result)
    assert "Not a directory" in message or "NotADirectory" in message, message
    frame = runs()
    assert len(frame) == 1 and frame.iloc[0]["status"] == "FAILED"


@pytest.mark.slow
def test_tracking_server_lost_mid_run_keeps_metrics_and_resumes(workdir, data_dir):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**subprocess_env(workdir), "MLFLOW_TRACKING_URI": url}
    server = start_server(workdir, port)
    try:
        training = subprocess.Popen(
            [*KILLABLE_TRAIN, "--epochs", "300"],
            cwd=workdir,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        states = wait_for(
            lambda: list(workdir.glob("checkpoints/*/state.json")), 180, "a checkpoint"
        )
        run_id = states[0].parent.name
    finally:
        stop_server(server)
    started = time.time()
    _, stderr = training.communicate(timeout=180)
    assert time.time() - started < 60, "the lost server was not noticed in time"
    assert training.returncode == 1
    last = stderr.strip().splitlines()[-1]
    assert "lost the tracking store" in last and f"--resume {run_id}" in last, stderr
    spool = workdir / "checkpoints" / run_id / "unsent_metrics.jsonl"
    assert spool.is_file() and spool.stat().st_size > 0
    assert (workdir / "checkpoints" / run_id / "weights.npz").is_file()

    server = start_server(workdir, port)
    try:
        resumed = run_to_end(
            workdir, *PIPELINE, "train", "--resume", run_id, "--no-progress", env=env
        )
        assert resumed.returncode == 0, resumed.stderr
        mlflow.set_tracking_uri(url)
        assert mlflow.get_run(run_id).info.status == "FINISHED"
        steps = [step for step, _ in metric_steps(run_id, "batch_loss")]
        assert steps == list(range(len(steps)))  # nothing lost, nothing twice
        assert len(metric_steps(run_id, "val_accuracy")) == 300
        assert not spool.exists()
    finally:
        stop_server(server)


@pytest.mark.slow
def test_sigterm_during_tune_ends_trial_and_study_runs_killed(workdir, data_dir):
    import optuna

    storage = f"sqlite:///{workdir / 'optuna.db'}"
    args = [
        *PIPELINE,
        "tune",
        "--storage",
        storage,
        "--n-trials",
        "50",
        "--epochs-range",
        "30",
        "40",
        "--hidden-size-range",
        "8",
        "16",
        "--pruner",
        "none",
    ]
    worker = start(workdir, *args)

    def trial_running():
        frame = runs()
        if not len(frame) or "tags.pipeline.stage" not in frame:
            return False
        trials = frame[(frame["tags.pipeline.stage"] == "trial") & (frame["status"] == "RUNNING")]
        return len(trials) > 0

    wait_for(trial_running, 180, "a running trial")
    time.sleep(1)
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=120)
    assert worker.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.strip().splitlines()[-1].startswith("Error: interrupted by SIGTERM")
    frame = runs()
    assert "RUNNING" not in set(frame["status"])
    assert set(frame[frame["tags.pipeline.stage"] == "tune"]["status"]) == {"KILLED"}
    assert "KILLED" in set(frame[frame["tags.pipeline.stage"] == "trial"]["status"])
    study = optuna.load_study(study_name="data-mlp", storage=storage)
    assert "RUNNING" not in {trial.state.name for trial in study.trials}


@pytest.mark.slow
def test_a_store_locked_mid_run_is_one_line_without_sql(workdir, data_dir):
    """Another process holds the SQLite store locked for 40 s while a run trains: training
    stops at the epoch end with one line (the driver's words, no SQL statement), its step
    metrics kept for --resume."""
    import sqlite3
    import threading

    train = start(workdir, *KILLABLE_TRAIN, "--epochs", "200")
    try:
        wait_for(running_run_id, 120, "the run to start")
        # training, past the run's set-up (its params and inputs, logged at once, not spooled)
        wait_for(lambda: list(workdir.glob("checkpoints/*/state.json")), 120, "an epoch")

        def hold() -> None:
            locked = sqlite3.connect(workdir / "mlflow.db", isolation_level=None, timeout=60)
            locked.execute("BEGIN EXCLUSIVE")
            time.sleep(40)
            locked.close()

        holder = threading.Thread(target=hold)
        holder.start()
        _, stderr = train.communicate(timeout=300)
        holder.join()
    finally:
        if train.poll() is None:
            train.kill()
    assert train.returncode == 1, stderr
    assert "[SQL:" not in stderr and "SELECT" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("Error: lost the tracking store ((sqlite3.OperationalError)"), stderr
