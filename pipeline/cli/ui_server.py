"""`pipeline ui`: the MLflow UI on the project store, stopped by the command that started it."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable

from pipeline import config as cfg
from pipeline.errors import redact

JOB_EXECUTION = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"  # MLflow's switch for its job runner


def server_env() -> dict[str, str]:
    """The UI server's environment: without MLflow's GenAI job runner, unless the user asks.

    The runner starts eight more processes that cost the server's start-up twice the CPU
    (measured: 68 s against 31 s of CPU) and run nothing this project records; on a small
    machine they compete with a training started beside the UI.
    """
    env = dict(os.environ)
    env.setdefault(JOB_EXECUTION, "false")
    return env


def serve(host: str, port: int, storage: str, say: Callable[[str], None]) -> int:
    """Run `mlflow ui` until it exits or this process gets SIGINT/SIGTERM; its exit code."""
    storage = redact(storage)
    if importlib.util.find_spec("optuna_dashboard"):
        say(f"Optuna studies: optuna-dashboard {storage}")
    else:
        say(f"Optuna studies: pip install optuna-dashboard && optuna-dashboard {storage}")
    say(f"MLflow UI on http://{host}:{port} (Ctrl-C stops it)")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", cfg.tracking_uri()]
    server = subprocess.Popen([*command, "--host", host, "--port", str(port)], env=server_env())

    def stop_server(_signal_number, _frame) -> None:
        server.terminate()  # the server stops its own workers

    previous = {
        number: signal.signal(number, stop_server) for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        code = server.wait()
    finally:
        for number, action in previous.items():
            signal.signal(number, action)
        if server.poll() is None:
            server.kill()
            server.wait()
    return code if code >= 0 else 128 - code
