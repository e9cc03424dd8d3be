"""`pipeline ui`: the MLflow UI on the project store, stopped by the command that started it."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

from pipeline.cli import console
from pipeline.errors import redact

JOB_EXECUTION = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"  # MLflow's switch for its job runner
BACKEND_STORE = "MLFLOW_BACKEND_STORE_URI"  # what `mlflow ui --backend-store-uri` reads
REGISTRY_STORE = "MLFLOW_REGISTRY_STORE_URI"  # and --registry-store-uri
# Where the project's records are in the UI, for a newcomer.
WHERE = (
    "  runs: the experiment's Runs table (train, evaluate, tune, trial, report, main; the "
    "columns compare params and metrics)\n"
    "  models: Models (registered mnist-mlp / mnist-lstm, alias @champion) and the "
    "experiment's Models tab (every logged model, with its val/test metrics)\n"
    "  studies: the tune runs (best.* tags, study/ plots), each trial a child run"
)


def server_env(tracking_uri: str) -> dict[str, str]:
    """The UI server's environment: the store URI (in the environment, not on its command line,
    where `ps` would show any password to every user), and MLflow's GenAI job runner off unless
    the user asks for it.

    The runner starts eight more processes that double the CPU of the server's start-up and
    run nothing this project records; on a small machine they compete with a training started
    beside the UI.
    """
    env = dict(os.environ)
    env.setdefault(JOB_EXECUTION, "false")
    env[BACKEND_STORE] = env[REGISTRY_STORE] = tracking_uri  # one store, said without a line
    # Starlette's notice about MLflow's own import, once per server process: not the user's to
    # act on.
    env.setdefault("PYTHONWARNINGS", "ignore:starlette.middleware.wsgi is deprecated")
    return env


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def serve(
    host: str,
    port: int,
    tracking_uri: str,
    storage: str,
    experiment_id: str,
    say: Callable[[str], None],
) -> int:
    """Run `mlflow ui` until it exits or this process gets SIGINT/SIGTERM; its exit code.

    The URL is printed once the server answers, as the deep link to the experiment's runs."""
    command = [sys.executable, "-m", "mlflow", "ui", "--host", host, "--port", str(port)]
    # Uvicorn's "running on" line would come long before the server answers: the link printed
    # once it does is the one to follow. Warnings and errors still show.
    command += ["--uvicorn-opts", "--log-level warning"]
    server = subprocess.Popen(command, env=server_env(tracking_uri))

    def stop_server(_signal_number, _frame) -> None:
        server.terminate()  # the server stops its own workers

    previous = {
        number: signal.signal(number, stop_server) for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
        say(f"Starting the MLflow UI on {host}:{port} (a minute on a small machine) ...")
        while server.poll() is None and not _answers(base):
            time.sleep(0.5)
        if server.poll() is None:
            say(f"MLflow UI: {console.ui_link(base, experiment_id)}  (Ctrl-C stops it)")
            say(WHERE)
            storage = redact(storage)
            if importlib.util.find_spec("optuna_dashboard"):
                say(f"Optuna studies: optuna-dashboard {storage}")
            else:
                say(f"Optuna studies: pip install optuna-dashboard && optuna-dashboard {storage}")
        code = server.wait()
    finally:
        for number, action in previous.items():
            signal.signal(number, action)
        if server.poll() is None:
            server.kill()
            server.wait()
    return code if code >= 0 else 128 - code
