"""A worker's memory over a long study, and what fresh trial processes cost in trials per hour.

    python bench/tune_memory.py [--trials 30] [--per-process 10 30]

For each --per-process N, in a temporary working directory with its own stores (data from
--source): `pipeline tune --trials-per-process N` of --trials trials of one model size (MLP,
hidden 256, learning rate 1e-3, 2 or 3 epochs; no pruning). Prints the resident memory (MB) of
the process that ran each of trials 1, 10, 11, 20, 21 and the last (each trial's `rss_mb` user
attribute), the wall time, trials per hour and seconds per epoch trained (the sampler picks 2 or
3 epochs, so compare runs by that). N equal to --trials is one process for the whole study: the
growth Keras and TensorFlow leave.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import optuna
from common import Workspace  # bench/, beside this script

from pipeline.tracking import names

REPO = Path(__file__).resolve().parents[1]
FIXED = [
    "--arch",
    "mlp",
    "--pruner",
    "none",
    "--learning-rate-range",
    "0.001",
    "0.0010001",
    "--hidden-size-range",
    "256",
    "257",
    "--epochs-range",
    "2",
    "3",
]


def pipeline(args: list[str], workdir: Path, env: dict) -> None:
    Workspace(workdir, env).pipeline(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--per-process", type=int, nargs="+", default=[10, 30])
    options = parser.parse_args()
    for per_process in options.per_process:
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
            workdir = Path(tmp)
            storage = f"sqlite:///{workdir / 'optuna.db'}"
            env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
            env.pop("MLFLOW_RUN_ID", None)
            pipeline(["download", "--source", options.source], workdir, env)
            started = time.perf_counter()
            pipeline(
                [
                    "tune",
                    *FIXED,
                    "--n-trials",
                    str(options.trials),
                    "--storage",
                    storage,
                    "--trials-per-process",
                    str(per_process),
                ],
                workdir,
                env,
            )
            seconds = time.perf_counter() - started
            trials = optuna.load_study(study_name="mnist-mlp", storage=storage).trials
            marks = sorted({1, 10, 11, 20, 21, len(trials)} & set(range(1, len(trials) + 1)))
            rss = "  ".join(f"#{n}: {trials[n - 1].user_attrs[names.RSS_ATTR]}" for n in marks)
            processes = len({trial.user_attrs["process"] for trial in trials})
            epochs = sum(trial.user_attrs[names.TRAINED_ATTR] for trial in trials)
            print(
                f"--trials-per-process {per_process:>3}: {len(trials)} trials in {processes} "
                f"process(es), {epochs} epochs, {seconds:.0f} s "
                f"({3600 * len(trials) / seconds:.0f} trials/h, {seconds / epochs:.2f} s per "
                f"epoch); RSS MB after trial {rss}",
                flush=True,
            )


if __name__ == "__main__":
    main()
