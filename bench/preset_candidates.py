"""Candidate default presets on real MNIST: test accuracy and fit time against the seed preset.

    python bench/preset_candidates.py --arch lstm \
        --candidate lr=0.003,batch=64,epochs=14,schedule=cosine \
        --candidate lr=0.004,batch=128,epochs=18,schedule=cosine [--seeds 0 1]

In a temporary working directory with its own store (data from --source), trains the seed preset
once (not with --skip-seed-preset: accuracy only), then each candidate (the default preset with
the given values replaced) for each seed, with `pipeline train` + `pipeline evaluate`. Prints
test accuracy (the evaluate stage), validation accuracy, `train_seconds` (the fit, as the train
run logs it) and its ratio to the seed preset's.
Every run shares the machine with nothing this script starts, so the ratios are measured alike.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIPELINE = [sys.executable, "-m", "pipeline"]
OPTIONS = {
    "lr": "--learning-rate",
    "batch": "--batch-size",
    "epochs": "--epochs",
    "schedule": "--learning-rate-schedule",
    "hidden": "--hidden-size",
}


def run(args: list[str], workdir: Path, env: dict) -> str:
    out = subprocess.run([*PIPELINE, *args], capture_output=True, text=True, cwd=workdir, env=env)
    if out.returncode:
        raise SystemExit(f"pipeline {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return out.stdout


def train_and_evaluate(workdir: Path, env: dict, *options: str) -> tuple[float, float, float]:
    """(test accuracy, val accuracy, train_seconds) of one `pipeline train` + `evaluate`."""
    import mlflow

    trained = run(["train", "--no-progress", *options], workdir, env)
    run_id = re.search(r"run\s+(\w{32})", trained).group(1)
    evaluated = run(["evaluate", "--run-id", run_id, "--no-register"], workdir, env)
    metrics = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"]).get_run(run_id).data.metrics
    test = float(re.search(r"test_accuracy (\S+)", evaluated).group(1))
    return test, metrics["val_accuracy"], metrics["train_seconds"]


def candidate_options(text: str) -> list[str]:
    options = []
    for pair in text.split(","):
        key, value = pair.split("=")
        options += [OPTIONS[key], value]
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--arch", default="lstm")
    parser.add_argument("--candidate", action="append", default=[])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--skip-seed-preset",
        action="store_true",
        help="accuracy only: no seed preset run, no time ratio",
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-presets-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
        env.pop("MLFLOW_RUN_ID", None)
        run(["download", "--source", options.source], workdir, env)
        arch = ["--arch", options.arch]
        print("| candidate | seed | test_accuracy | val_accuracy | train_seconds | vs seed |")
        print("| --- | --- | --- | --- | --- | --- |")
        seed_seconds = None
        if not options.skip_seed_preset:
            test, val, seed_seconds = train_and_evaluate(workdir, env, *arch, "--preset", "seed")
            print(
                f"| seed preset | 0 | {test:.4f} | {val:.4f} | {seed_seconds:.0f} | 1.00 |",
                flush=True,
            )
        for candidate in options.candidate:
            for seed in options.seeds:
                test, val, seconds = train_and_evaluate(
                    workdir, env, *arch, "--seed", str(seed), *candidate_options(candidate)
                )
                ratio = f"{seconds / seed_seconds:.2f}" if seed_seconds else "-"
                print(
                    f"| {candidate} | {seed} | {test:.4f} | {val:.4f} | {seconds:.0f} | {ratio} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
