"""Wall time and peak memory of the commands that do not train (median of --repeats runs).

    python bench/cli_latency.py [--source ../shared/data/mnist] [--repeats 5]

Each command runs as a fresh process in a temporary working directory whose store and data were
prepared first; peak RSS is GNU time's %M. The line says whether the process loaded TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROBE = """
import atexit, sys
atexit.register(lambda: sys.stderr.write("\\nTF " + str("tensorflow" in sys.modules) + "\\n"))
from pipeline.cli import main
main(sys.argv[1:])
"""
COMMANDS = [
    ["--version"],
    ["--help"],
    ["download"],
    ["reap"],
    ["report", "--output-dir", "out"],
    ["init-stores"],
    ["ui", "--help"],
    ["train", "--epochs", "0"],
    ["evaluate"],
    ["tune", "--pruner", "sometimes"],
]


def measure(command: list[str], workdir: Path, env: dict) -> tuple[float, float, bool]:
    """(seconds, peak RSS in MB, TensorFlow loaded) of one run (RSS from GNU time's %M)."""
    started = time.perf_counter()
    timed = ["/usr/bin/time", "-f", "PEAK_KB %M", sys.executable, "-c", PROBE, *command]
    done = subprocess.run(timed, cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak = int(done.stderr.rsplit("PEAK_KB", 1)[1].split()[0])
    return seconds, peak / 1024, "TF True" in done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
        env.pop("MLFLOW_RUN_ID", None)
        subprocess.run([sys.executable, "-m", "pipeline", "download", "--source", options.source],
                       cwd=workdir, env=env, capture_output=True, check=True)  # fmt: skip
        print(f"{'command':<28} {'median s':>9} {'peak MB':>8}  TensorFlow")
        for command in COMMANDS:
            runs = [measure(command, workdir, env) for _ in range(options.repeats)]
            seconds = statistics.median(run[0] for run in runs)
            peak = max(run[1] for run in runs)
            loaded = any(run[2] for run in runs)
            print(f"pipeline {' '.join(command):<19} {seconds:>9.2f} {peak:>8.0f}  "
                  f"{'loaded' if loaded else 'no'}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
