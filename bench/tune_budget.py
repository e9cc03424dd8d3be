"""Tuning on real MNIST: the best found within a budget, and what pruning saves.

    python bench/tune_budget.py [--source ../shared/data/mnist] [--mlp-trials 12] [--lstm-trials 6]

(a) per arch: `pipeline tune --retrain-best` (TPE, Hyperband) with the trial budget given; prints
    the best validation accuracy, the test accuracy of the retrained best and the wall time.
(b) MLP: the same TPE seed and trial count with `--pruner none` and with `--pruner hyperband`;
    prints the epochs trained in all and the best validation accuracy of each.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[1]
PIPELINE = [sys.executable, "-m", "pipeline"]


def run(args: list[str], workdir: Path, env: dict) -> str:
    out = subprocess.run([*PIPELINE, *args], capture_output=True, text=True, cwd=workdir, env=env)
    if out.returncode:
        raise SystemExit(f"pipeline {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return out.stdout


def epochs_trained(study: optuna.Study) -> int:
    """Epochs actually run: a pruned trial counts up to the epoch it was stopped at."""
    total = 0
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            total += trial.params["epochs"]
        elif trial.state == optuna.trial.TrialState.PRUNED:
            total += max(trial.intermediate_values, default=0)
    return total


def study(workdir: Path, env: dict, name: str, arch: str, trials: int, pruner: str, retrain: bool):
    storage = f"sqlite:///{workdir / 'optuna.db'}"
    args = ["tune", "--arch", arch, "--n-trials", str(trials), "--pruner", pruner,
            "--study-name", name, "--storage", storage, "--seed", "0"]  # fmt: skip
    started = time.perf_counter()
    out = run(args + (["--retrain-best"] if retrain else []), workdir, env)
    seconds = time.perf_counter() - started
    found = optuna.load_study(study_name=name, storage=storage)
    test = re.search(r"test_accuracy (\S+)", out)
    return found, seconds, float(test.group(1)) if test else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--mlp-trials", type=int, default=12)
    parser.add_argument("--lstm-trials", type=int, default=6)
    options = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
        env.pop("MLFLOW_RUN_ID", None)
        run(["download", "--source", options.source], workdir, env)
        print("(b) MLP, TPE seed 0, same trial count, pruning off vs on", flush=True)
        results = {}
        for pruner in ("none", "hyperband"):
            found, seconds, _ = study(workdir, env, f"prune-{pruner}", "mlp", options.mlp_trials,
                                      pruner, retrain=False)  # fmt: skip
            results[pruner] = found
            print(f"  pruner {pruner:<9} trials {len(found.trials):>3}  epochs trained "
                  f"{epochs_trained(found):>4}  best val {found.best_value:.4f}  "
                  f"{seconds:.0f} s", flush=True)  # fmt: skip
        ratio = epochs_trained(results["hyperband"]) / epochs_trained(results["none"])
        delta = 100 * (results["hyperband"].best_value - results["none"].best_value)
        print(f"  pruned/unpruned epochs {ratio:.2f}; best value difference {delta:+.2f} pt")
        print("(a) best configuration within the budget, retrained and evaluated", flush=True)
        for arch, trials in (("mlp", options.mlp_trials), ("lstm", options.lstm_trials)):
            found, seconds, test = study(workdir, env, f"budget-{arch}", arch, trials,
                                         "hyperband", retrain=True)  # fmt: skip
            print(f"  {arch:<5} {trials} trials  best val {found.best_value:.4f}  "
                  f"retrained test {test:.4f}  params {found.best_params}  {seconds:.0f} s",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
