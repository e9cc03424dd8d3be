"""What `--log-checkpoints` costs: seconds per epoch for logging each epoch's model.

    python bench/checkpoint_models.py [--source ../shared/data/mnist] [--epochs 5] [--repeats 3]

For each arch, `pipeline train --epochs N` runs with and without `--log-checkpoints`, rounds
interleaved, in a temporary working directory with its own SQLite store. The cost per epoch is
the difference of the median whole-process wall times divided by N.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from common import Workspace  # bench/, beside this script

REPO = Path(__file__).resolve().parents[1]


def wall(args: list[str], workdir: Path, env: dict) -> float:
    started = time.perf_counter()
    Workspace(workdir, env).pipeline(*args)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ckpt-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
        env.pop("MLFLOW_RUN_ID", None)
        wall(["download", "--source", options.source], workdir, env)
        print(
            f"{'arch':<6}{'plain s':>9}{'logged s':>10}{'per epoch s':>13}  "
            f"(median of {options.repeats}, {options.epochs} epochs)"
        )
        for arch in ("mlp", "lstm"):
            args = ["train", "--arch", arch, "--epochs", str(options.epochs), "--no-progress"]
            plain, logged = [], []
            for _ in range(options.repeats):
                plain.append(wall(args, workdir, env))
                logged.append(wall([*args, "--log-checkpoints"], workdir, env))
            without, with_models = statistics.median(plain), statistics.median(logged)
            per_epoch = (with_models - without) / options.epochs
            print(f"{arch:<6}{without:>9.1f}{with_models:>10.1f}{per_epoch:>13.2f}", flush=True)


if __name__ == "__main__":
    main()
