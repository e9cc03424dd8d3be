"""Candidate default presets on real MNIST: test accuracy and fit time against the seed preset.

    python bench/preset_candidates.py --arch lstm \
        --candidate lr=0.003,batch=64,epochs=14,schedule=cosine \
        --candidate lr=0.004,batch=128,epochs=18,schedule=cosine [--seeds 0 1]

In a working directory (--workdir, else a new temporary one) with its own store (data from
--source), trains the seed preset once (not with --skip-seed-preset: accuracy only), then each
candidate (the default preset with the given values replaced) for each seed, with `pipeline
train` + `pipeline evaluate`. Prints test accuracy (the evaluate stage), validation accuracy,
`train_seconds` (the fit, as the train run logs it) and its ratio to the seed preset's.
Every run shares the machine with nothing this script starts, so the ratios are measured alike.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import Workspace, kept_val_accuracy  # bench/, beside this script

from pipeline.tracking import names

REPO = Path(__file__).resolve().parents[1]
OPTIONS = {
    "lr": "--learning-rate",
    "batch": "--batch-size",
    "epochs": "--epochs",
    "schedule": "--learning-rate-schedule",
    "hidden": "--hidden-size",
}


def train_and_evaluate(work: Workspace, *options: str) -> tuple[float, float, float]:
    """(test accuracy, val accuracy, train_seconds) of one `pipeline train` + `evaluate`."""
    trained, evaluated = work.train_and_evaluate(*options)
    return (
        evaluated.data.metrics[names.TEST_ACCURACY],
        kept_val_accuracy(work, trained),
        trained.data.metrics[names.TRAIN_SECONDS],
    )


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
    parser.add_argument("--workdir", type=Path)
    options = parser.parse_args()
    work = Workspace.create(options.workdir, "bench-presets-")
    work.pipeline("download", "--source", options.source)
    arch = ["--arch", options.arch]
    print("| candidate | seed | test_accuracy | val_accuracy | train_seconds | vs seed |")
    print("| --- | --- | --- | --- | --- | --- |")
    seed_seconds = None
    if not options.skip_seed_preset:
        test, val, seed_seconds = train_and_evaluate(work, *arch, "--preset", "seed")
        print(
            f"| seed preset | 0 | {test:.4f} | {val:.4f} | {seed_seconds:.0f} | 1.00 |", flush=True
        )
    for candidate in options.candidate:
        for seed in options.seeds:
            test, val, seconds = train_and_evaluate(
                work, *arch, "--seed", str(seed), *candidate_options(candidate)
            )
            ratio = f"{seconds / seed_seconds:.2f}" if seed_seconds else "-"
            print(
                f"| {candidate} | {seed} | {test:.4f} | {val:.4f} | {seconds:.0f} | {ratio} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
