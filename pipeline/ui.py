"""`pipeline ui`: the MLflow UI on the project store, stopped by the command that started it."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from collections.abc import Callable

from pipeline import config as cfg
from pipeline.errors import redact


def serve(host: str, port: int, storage: str, say: Callable[[str], None]) -> int:
    """Run `mlflow ui` until it exits or this process gets SIGINT/SIGTERM; its exit code."""
    storage = redact(storage)
    if importlib.util.find_spec("optuna_dashboard"):
        say(f"Optuna studies: optuna-dashboard {storage}")
    else:
        say(f"Optuna studies: pip install optuna-dashboard && optuna-dashboard {storage}")
    say(f"MLflow UI on http://{host}:{port} (Ctrl-C stops it)")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", cfg.tracking_uri()]
    server = subprocess.Popen([*command, "--host", host, "--port", str(port)])

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
