"""The reaper: a run whose process died ends KILLED, a live run elsewhere is left alone."""

from __future__ import annotations

from conftest import run_status


def running_run(tags: dict[str, str]) -> str:
    """A RUNNING run in the store with the given tags (as a live or dead stage leaves it)."""
    import os

    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    experiment = mlflow.set_experiment("mnist").experiment_id
    run = mlflow.MlflowClient().create_run(experiment, tags=tags)
    return run.info.run_id


def test_the_reaper_judges_each_run_by_its_own_heartbeat(cli, workdir, monkeypatch):
    import time

    now = time.time()
    slow_live = running_run(
        {"pipeline.heartbeat": f"{now - 20:.0f}", "pipeline.heartbeat_interval": "30"}
    )
    dead = running_run(
        {"pipeline.heartbeat": f"{now - 200:.0f}", "pipeline.heartbeat_interval": "30"}
    )
    garbled = running_run({"pipeline.heartbeat": "yesterday"})
    never = running_run({})
    monkeypatch.setenv("PIPELINE_RUN_HEARTBEAT_SECONDS", "2")  # this stage beats fast
    result = cli("reap")
    assert result.exit_code == 0, result.stderr
    assert run_status(slow_live) == "RUNNING" and run_status(dead) == "KILLED"
    assert run_status(garbled) == "RUNNING" and run_status(never) == "RUNNING"
    assert "1 stale run(s) marked KILLED" in result.stdout and dead in result.stdout
    assert f"left run {garbled} RUNNING" in result.stderr

    assert cli("reap", "--include-unbeating", "--older-than", "1h").exit_code == 0
    assert run_status(never) == "RUNNING"
    time.sleep(2)
    result = cli("reap", "--include-unbeating", "--older-than", "1s")
    assert result.exit_code == 0 and run_status(never) == "KILLED"
    import mlflow

    assert "never sent a heartbeat" in mlflow.get_run(never).data.tags["pipeline.failure_reason"]
    assert run_status(slow_live) == "RUNNING"


def test_plain_reap_names_a_run_that_never_beat_and_how_to_reap_it(cli, workdir):
    """A RUNNING run without a heartbeat (an `mlflow run` whose environment failed, say) cannot
    be judged; plain `reap` says so and gives the command that reaps it."""
    import shlex
    import time

    never = running_run({})
    live = running_run({"pipeline.heartbeat": f"{time.time():.0f}"})
    time.sleep(1.1)
    result = cli("reap")
    assert result.exit_code == 0, result.stderr
    line = next(line for line in result.stderr.splitlines() if never in line)
    assert "never sent a heartbeat" in line and live not in result.stderr
    assert run_status(never) == "RUNNING"
    command = shlex.split(line.split("if its process is gone: ")[1])
    assert command[:2] == ["pipeline", "reap"]
    assert cli(*command[1:]).exit_code == 0
    assert run_status(never) == "KILLED" and run_status(live) == "RUNNING"


def test_reap_fails_a_dead_runs_pending_models_and_tidies_its_checkpoints(cli, workdir):
    """What SIGKILL leaves mid-write: a logged model PENDING for good, a checkpoint folder with
    only a partial file. The reap ends the model FAILED and removes both; a partial file that
    is being written now (another run's) stays."""
    import os
    import time

    import mlflow

    dead = running_run(
        {"pipeline.heartbeat": f"{time.time() - 300:.0f}", "pipeline.heartbeat_interval": "30"}
    )
    experiment = mlflow.get_run(dead).info.experiment_id
    pending = mlflow.initialize_logged_model(
        name="mlp-default", source_run_id=dead, experiment_id=experiment
    )
    folder = workdir / "checkpoints" / dead
    folder.mkdir(parents=True)
    part = folder / ".weights.npz.k2j3.part"
    part.write_bytes(b"half a checkpoint")
    os.utime(part, (time.time() - 120, time.time() - 120))
    busy = workdir / "checkpoints" / "another-run" / ".state.json.x9.part"
    busy.parent.mkdir()
    busy.write_bytes(b"being written")
    result = cli("reap")
    assert result.exit_code == 0, result.stderr
    assert f"marked run {dead} KILLED" in result.stdout
    assert str(mlflow.get_logged_model(pending.model_id).status) == "FAILED"
    assert not folder.exists() and busy.exists()
    assert f"partial checkpoint files a killed run left in checkpoints/{dead}" in result.stdout
