"""Checkpoints and resuming: damaged checkpoints, a run resumed twice, a run alive elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import one_line_error, run_status, runs


def killed_run_with_checkpoint(workdir) -> str:
    """A train run ended by SIGTERM after at least one checkpoint, as a user leaves it."""
    import signal
    import time

    from conftest import PIPELINE, start, wait_for

    args = [
        *PIPELINE,
        "train",
        "--arch",
        "mlp",
        "--epochs",
        "40",
        "--batch-size",
        "8",
        "--hidden-size",
        "16",
        "--no-progress",
    ]
    process = start(workdir, *args)
    wait_for(lambda: list(workdir.glob("checkpoints/*/state.json")), 120, "a checkpoint")
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    run_id = runs().iloc[0]["run_id"]
    assert run_status(run_id) == "KILLED"
    return run_id


@pytest.mark.slow
@pytest.mark.parametrize("damaged", ["state.json", "weights.npz"])
def test_a_damaged_checkpoint_is_one_line_and_the_run_stays_killed(
    cli, workdir, data_dir, damaged
):
    run_id = killed_run_with_checkpoint(workdir)
    path = workdir / "checkpoints" / run_id / damaged
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    result = cli("train", "--resume", run_id, "--no-progress")
    assert result.exit_code == 1
    assert "the checkpoint" in one_line_error(result) and "damaged" in one_line_error(result)
    assert run_status(run_id) == "KILLED"


@pytest.mark.slow
def test_a_run_resuming_in_one_process_cannot_be_resumed_by_another(workdir, data_dir):
    import mlflow
    from conftest import PIPELINE, run_to_end, start, wait_for

    run_id = killed_run_with_checkpoint(workdir)
    (workdir / "checkpoints" / run_id / ".weights.npz.x.part").write_bytes(b"left by SIGKILL")
    resume = [*PIPELINE, "train", "--resume", run_id, "--no-progress"]
    first = start(workdir, *resume)
    wait_for(lambda: run_status(run_id) == "RUNNING", 120, "the first resume to start")
    second = run_to_end(workdir, *resume, timeout=300)
    assert second.returncode == 1
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: --resume") and "another process" in last, second.stderr
    _, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    assert run_status(run_id) == "FINISHED"
    assert "pipeline.failure_reason" not in mlflow.get_run(run_id).data.tags
    assert not list((workdir / "checkpoints" / run_id).glob(".*.part"))


@pytest.mark.slow
def test_a_run_beating_on_another_machine_cannot_be_resumed(cli, workdir, data_dir):
    import time

    import mlflow

    run_id = killed_run_with_checkpoint(workdir)
    client = mlflow.MlflowClient()
    client.update_run(run_id, status="RUNNING")  # as a live run elsewhere shows in the store
    client.set_tag(run_id, "pipeline.host", "another-machine")
    client.set_tag(run_id, "pipeline.heartbeat", f"{time.time():.0f}")
    result = cli("train", "--resume", run_id, "--no-progress")
    assert result.exit_code == 1
    assert "the run is alive" in one_line_error(result)
    assert run_status(run_id) == "RUNNING"


@pytest.mark.slow
def test_a_sigkill_inside_a_checkpoint_write_leaves_a_part_that_resume_removes(workdir, data_dir):
    """A real SIGKILL while a checkpoint's weights are being written (a wide model, so each
    write takes a while; the process is killed the moment a .part file appears)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import subprocess_env

    args = [sys.executable, "-m", "pipeline", "train", "--arch", "mlp", "--epochs", "30"]
    args += ["--hidden-size", "1500", "--batch-size", "128", "--no-progress"]
    for _attempt in range(3):  # the write may slip between two looks: then another run
        process = subprocess.Popen(args, cwd=workdir, env=subprocess_env(workdir))
        parts: list = []
        deadline = time.time() + 240
        while not parts and process.poll() is None and time.time() < deadline:
            parts = list(workdir.glob("checkpoints/*/.*.part"))
            time.sleep(0.0005)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        folder = parts[0].parent if parts else None
        if folder is not None and list(folder.glob(".*.part")):
            break
    else:
        pytest.fail("no SIGKILL landed inside a checkpoint write in 3 runs")
    run_id = folder.name
    assert run_status(run_id) == "RUNNING"  # SIGKILL: nothing ended it
    resumed = subprocess.run(
        [sys.executable, "-m", "pipeline", "train", "--resume", run_id, "--no-progress"],
        cwd=workdir,
        env=subprocess_env(workdir),
        capture_output=True,
        text=True,
        timeout=600,
    )
    # Killed in its first write, the run has no checkpoint to resume from: one line, and the
    # partial file goes all the same.
    assert resumed.returncode == 0 or "no checkpoint" in resumed.stderr, resumed.stderr
    assert not list(folder.glob(".*.part"))  # the killed writer's partial file is gone


def test_the_best_epochs_weights_survive_a_resume(tmp_path):
    """Early stopping's choice lives in the checkpoint state and folder: a resumed run restores
    the best epoch's weights even when that epoch was trained before the interruption."""
    from pipeline.early_stopping import BestEpoch
    from pipeline.keras_runtime import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    state: dict = {}
    best = BestEpoch(state, tmp_path)
    for epoch, accuracy in enumerate([0.9, 0.5, 0.8, 0.8], start=1):
        model.set_weights([np.full((3, 2), epoch, "float32"), np.zeros(2, "float32")])
        best.see(model, epoch, accuracy, step=10 * epoch, metrics=[])
    # Epoch 1 comes before the first epoch a curve may choose; 3 and 4 tie: the later.
    assert (state["best_epoch"], state["best_step"]) == (4, 40)
    model.set_weights([np.full((3, 2), 5.0, "float32"), np.zeros(2, "float32")])
    best.see(model, 5, 0.6, step=50, metrics=[])  # worse: kept out
    resumed = BestEpoch(dict(state), tmp_path)  # as --resume reads them back
    resumed.restore(model)
    assert (model.get_weights()[0] == 4.0).all()


def test_resume_with_options_that_change_the_run_is_refused(cli, data_dir):
    result = cli("train", "--resume", "0123456789abcdef", "--arch", "lstm", "--epochs", "2")
    assert result.exit_code == 1
    message = one_line_error(result)
    assert "--arch, --epochs" in message and "--resume" in message
    assert len(runs()) == 0
