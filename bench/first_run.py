"""How long a newcomer's `make run` takes: `pipeline main --arch both` in a fresh folder.

    python bench/first_run.py [--source ../shared/data/mnist]

Runs the main job as `make run` does (both architectures, the default preset, fresh stores),
in a temporary folder, and prints the wall time of the whole job and of each step as the job
reported it (the time between its step lines). The virtualenv's installation is not counted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "mnist"))
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-first-run-") as tmp:
        env = {**os.environ, "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}
        for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
            env.pop(name, None)
        command = [sys.executable, "-m", "pipeline", "main", "--arch", "both"]
        started = last = time.perf_counter()
        job = subprocess.Popen(
            [*command, "--source", options.source],
            cwd=tmp,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert job.stdout is not None
        for line in job.stdout:
            now = time.perf_counter()
            print(f"{now - started:7.1f} s (+{now - last:6.1f} s)  {line.rstrip()}", flush=True)
            last = now
        if job.wait() != 0:
            raise SystemExit(f"pipeline main failed with exit code {job.returncode}")
        print(
            f"# make run's job (pipeline main --arch both): {time.perf_counter() - started:.0f} s"
        )


if __name__ == "__main__":
    main()
