"""Wall time and peak memory of the commands that do not train (median of --repeats runs), and
the fixed costs of `pipeline train` against a bare Keras script.

    python bench/cli_latency.py [--source ../shared/data/mnist] [--repeats 5] [--skip-light]
                                [--train-repeats 3]

Each command runs as a fresh process in a temporary working directory whose store and data were
prepared first; peak RSS is GNU time's %M. The line says whether the process loaded TensorFlow.

Then, interleaved --train-repeats times: `pipeline train --arch mlp --preset seed` as a whole
process, timed by phase (the stage's functions wrapped with timers), and a bare script that
imports Keras, loads the same cached arrays, builds and fits the same model and evaluates it on
the test set. The ratio is the medians' ratio of whole-process wall times.
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
from pipeline.cli.app import run
run(sys.argv[1:])
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


# `pipeline train` with timers around its phases: where the time goes besides the fit.
TRAIN_PROBE = """
import atexit, sys, time
started = time.perf_counter()
phases = {}
def timed(module, name, label):
    original = getattr(module, name)
    def wrapper(*args, **kwargs):
        begun = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            phases[label] = phases.get(label, 0.0) + time.perf_counter() - begun
    setattr(module, name, wrapper)
import pipeline.cli.app
phases["import cli"] = time.perf_counter() - started
from pipeline import data, train_records, training, tracking, provenance
phases["import stage modules"] = time.perf_counter() - started - phases["import cli"]
timed(data, "load_dataset", "load + verify data")
timed(tracking, "setup", "store setup + reap")
timed(training, "new_model", "  of which: build + compile")
timed(training, "fit", "fit: TF import, build, fit")
timed(train_records, "log_inputs", "dataset inputs")
timed(train_records, "log_model", "log model")
timed(train_records, "log_curves", "learning curves figure")
timed(provenance, "provenance", "git provenance")
def report():
    total = time.perf_counter() - started
    sys.stderr.write("PHASES " + repr({**phases, "total in process": total}) + "\\n")
atexit.register(report)
pipeline.cli.app.run(sys.argv[1:])
"""

BARE_SCRIPT = """
import time
started = time.perf_counter()
import numpy as np
import keras
from pipeline import models
from pipeline.config import train_config
arrays = np.load("data/mnist/mnist.npz")
x, y = arrays["train_images"].astype(np.float32), arrays["train_labels"]
cut = len(y) // 10  # a tenth held out, as the pipeline's validation split
config = train_config("mlp", "seed")
keras.utils.set_random_seed(0)
model = models.compile_model(models.build_model(config), config, 1)
model.fit(x[cut:], y[cut:], batch_size=config.batch_size, epochs=config.epochs,
          validation_data=(x[:cut], y[:cut]), verbose=0)
loss, accuracy = model.evaluate(arrays["test_images"].astype(np.float32),
                                arrays["test_labels"], verbose=0)
print("test accuracy", accuracy)
"""


def train_costs(workdir: Path, env: dict, repeats: int) -> None:
    """Whole-process wall time of `pipeline train --arch mlp --preset seed` by phase, and of a
    bare Keras script doing the same training plus a test evaluation."""
    import ast

    pipeline_runs, bare_runs = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                TRAIN_PROBE,
                "train",
                "--arch",
                "mlp",
                "--preset",
                "seed",
                "--no-progress",
            ],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        if done.returncode:
            raise SystemExit(f"pipeline train failed:\n{done.stderr[-2000:]}")
        phases = ast.literal_eval(done.stderr.rsplit("PHASES ", 1)[1].splitlines()[0])
        pipeline_runs.append({**phases, "process wall time": wall})
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", BARE_SCRIPT],
            cwd=workdir,
            env=env,
            check=True,
            capture_output=True,
        )
        bare_runs.append(time.perf_counter() - started)
    print(f"\npipeline train --arch mlp --preset seed, median of {repeats} (seconds):")
    for phase in pipeline_runs[0]:
        values = [run.get(phase, 0.0) for run in pipeline_runs]
        print(f"  {phase:<28} {statistics.median(values):>7.2f}")
    pipeline_wall = statistics.median(run["process wall time"] for run in pipeline_runs)
    bare_wall = statistics.median(bare_runs)
    print(f"bare Keras script (same fit + test evaluation): {bare_wall:.2f} s")
    print(f"ratio pipeline / bare: {pipeline_wall / bare_wall:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-repeats", type=int, default=3)
    parser.add_argument("--skip-light", action="store_true", help="only the train comparison")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
        env.pop("MLFLOW_RUN_ID", None)
        subprocess.run(
            [sys.executable, "-m", "pipeline", "download", "--source", options.source],
            cwd=workdir,
            env=env,
            capture_output=True,
            check=True,
        )
        print(f"{'command':<28} {'median s':>9} {'peak MB':>8}  TensorFlow")
        for command in [] if options.skip_light else COMMANDS:
            runs = [measure(command, workdir, env) for _ in range(options.repeats)]
            seconds = statistics.median(run[0] for run in runs)
            peak = max(run[1] for run in runs)
            loaded = any(run[2] for run in runs)
            print(
                f"pipeline {' '.join(command):<19} {seconds:>9.2f} {peak:>8.0f}  "
                f"{'loaded' if loaded else 'no'}",
                flush=True,
            )
        if options.train_repeats:
            train_costs(workdir, env, options.train_repeats)


if __name__ == "__main__":
    main()
