"""The ui command: it answers when it prints its link and stops cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.request

import mlflow
import psutil
import pytest
from conftest import (
    free_port,
    subprocess_env,
    wait_for,
)


@pytest.mark.slow
def test_ui_answers_when_it_prints_its_link_and_stops_on_sigterm(workdir):
    """The URL comes once the server answers, as the deep link to the project's runs; the
    store's URI (a password, perhaps) is on no command line; SIGTERM stops every process."""
    port = free_port()
    env = {**subprocess_env(workdir), "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'ui.db'}"}
    ui = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "ui", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=(workdir / "ui.err").open("w"),
        text=True,
        start_new_session=True,  # so that a failing test can stop every process it started
    )

    def answers() -> bool:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status
        except OSError:
            return False

    def alive(process: psutil.Process) -> bool:
        try:
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    try:
        link = next(line for line in ui.stdout if line.startswith("MLflow UI: "))
        url = link.split()[2]
        assert urllib.request.urlopen(url, timeout=5).status == 200  # when printed, it answers
        mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
        experiment = mlflow.get_experiment_by_name("mnist").experiment_id
        # In the UI's "Model training" mode, where the runs table and Models tab are.
        runs_page = f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs"
        assert url == f"{runs_page}?workflowType=machine_learning"
        server = psutil.Process(ui.pid).children(recursive=True)
        commands = [" ".join(process.cmdline()) for process in server]
        assert not [command for command in commands if "ui.db" in command], commands
        # MLflow's GenAI job runner (its huey consumers) is left off: nothing here uses it.
        assert not [command for command in commands if "huey" in command or "jobs" in command]
        # No "Uvicorn running on ..." before the server answers: the link above is the one.
        assert "Uvicorn running" not in (workdir / "ui.err").read_text()
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=60)
        wait_for(lambda: not answers(), 30, "the UI server to stop")
        wait_for(lambda: not any(alive(process) for process in server), 30, "its workers to stop")
    finally:  # whatever failed, nothing this test started outlives it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ui.pid, signal.SIGKILL)
        ui.wait()
