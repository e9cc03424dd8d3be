"""How often a study claims a winner that is not there, and whether it still finds one that is.

    python bench/verdict_null.py --source ../shared/data/mnist [--studies 20] [--trials 20]
                                 [--train-images 19690] [--power-seeds 0 1] [--workdir DIR]

Null studies: `pipeline tune` with near-copy ranges (learning rate 0.00099-0.00101, hidden size
255-257, every other setting the default preset's, no pruning), so every trial is the preset
again up to its luck; --studies of them, each with its own --seed (split, initialisation,
sampler), on the first --train-images training images of --source (all of the subset by
default: with 3,000 images, 300 validation images, near-copies disagreed on too few images for
either test to claim anything in 10 studies; a full-subset study takes about 10 minutes).
Each study's verdict is read from its tune run: a claim is
"better beyond noise" (gain > 0, p < 0.05). Today's test (the best against trial 0 by exact
McNemar on the images that chose it: `val_gain_unadjusted_p_value`) against the verdict's own,
adjusted for the choice (`val_gain_p_value`): claims in studies, with a 95 % Wilson interval.
Then, from every null study's stored per-image answers, 2,000 resampled sub-studies (trial 0
and 10 of its other trials at random) the same two ways.

Power: `pipeline tune --start-from seed` (default ranges and pruner, --trials) on all of
--source, one per --power-seeds seed: the verdict, adjusted and not.
"""

from __future__ import annotations

import argparse
import gzip
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import optuna

from pipeline import paired
from pipeline.tracking import names
from pipeline.tuning.trials import VAL_CORRECT_ATTR

PIPELINE = [sys.executable, "-m", "pipeline"]
NEAR_COPY = ["--learning-rate-range", "0.00099", "0.00101", "--hidden-size-range", "255", "257"]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(args: list[str], workdir: Path, env: dict) -> None:
    done = subprocess.run([*PIPELINE, *args], capture_output=True, text=True, cwd=workdir, env=env)
    if done.returncode:
        raise SystemExit(f"pipeline {' '.join(args)} failed:\n{done.stderr[-2000:]}")


def write_idx(path: Path, array: np.ndarray) -> None:
    magic = 0x0803 if array.ndim == 3 else 0x0801
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def smaller_source(source: Path, folder: Path, train_images: int) -> Path:
    """The first train_images training images of source (and its whole test set), as IDX."""
    from pipeline import data

    folder.mkdir(parents=True, exist_ok=True)
    images = data.parse_idx(source / "train-images-idx3-ubyte.gz", "images")
    labels = data.parse_idx(source / "train-labels-idx1-ubyte.gz", "labels")
    write_idx(folder / "train-images-idx3-ubyte.gz", images[:train_images])
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels[:train_images])
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (folder / name).write_bytes((source / name).read_bytes())
    return folder


def wilson(claims: int, total: int) -> str:
    """claims/total as a percentage with its 95 % Wilson interval."""
    if total == 0:
        return "n/a"
    z, share = 1.96, claims / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total))
    half /= 1 + z * z / total
    low, high = 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)
    return f"{claims}/{total} = {100 * share:.1f} % (95 % interval {low:.1f}-{high:.1f} %)"


def verdict_of(study_name: str) -> dict[str, float]:
    (parent,) = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`{names.STAGE}` = 'tune' and tags.`{names.STUDY}` = '{study_name}'",
        output_format="list",
    )
    return parent.data.metrics


def claims(metrics: dict[str, float]) -> tuple[bool, bool]:
    """(today's test claims, the adjusted verdict claims)."""
    gain = metrics.get(names.VAL_GAIN, 0.0)
    today = paired.significant(gain, metrics.get(names.VAL_GAIN_UNADJUSTED_P_VALUE, 1.0))
    return today, paired.significant(gain, metrics.get(names.VAL_GAIN_P_VALUE, 1.0))


def resampled(stores: list[tuple[str, str]], draws: int, size: int) -> tuple[int, int, int]:
    """(draws, today's claims, adjusted claims) over sub-studies of trial 0 and `size` others."""
    rng = np.random.default_rng(0)
    studies = []
    for storage, name in stores:
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        complete = [t for t in trials if VAL_CORRECT_ATTR in t.user_attrs]
        baseline = next(t for t in complete if names.PRESET in t.user_attrs)
        others = [t for t in complete if t.number != baseline.number]
        studies.append(
            (
                paired.unpack(baseline.user_attrs[VAL_CORRECT_ATTR]),
                [paired.unpack(t.user_attrs[VAL_CORRECT_ATTR]) for t in others],
            )
        )
    today = adjusted = 0
    for draw in range(draws):
        base, others = studies[draw % len(studies)]
        chosen = [others[i] for i in rng.choice(len(others), size, replace=False)]
        best = max(range(size), key=lambda i: chosen[i].sum())
        rest = [c for i, c in enumerate(chosen) if i != best]
        today += paired.compare(chosen[best], base).significant
        adjusted += paired.after_selection(chosen[best], rest, base).significant
    return draws, today, adjusted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--train-images", type=int, default=19_690)
    parser.add_argument("--power-seeds", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--workdir", type=Path)
    options = parser.parse_args()
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="verdict-null-"))
    workdir.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    os.environ["MLFLOW_TRACKING_URI"] = uri
    print(f"working directory {workdir}", flush=True)
    small = smaller_source(
        options.source.resolve(), workdir / "source-small", options.train_images
    )
    run(["init-stores"], workdir, env)
    run(["download", "--source", str(small), "--data-dir", "data/small"], workdir, env)
    storage = f"sqlite:///{workdir / 'optuna.db'}"
    today = adjusted = 0
    stores = []
    for seed in range(options.studies):
        name = f"null-{seed}"
        started, cpu = time.time(), children_cpu()
        run(
            ["tune", "--arch", "mlp", "--n-trials", str(options.trials), "--seed", str(seed)]
            + ["--study-name", name, "--storage", storage, "--pruner", "none", *NEAR_COPY]
            + ["--data-dir", "data/small", "--trials-per-process", str(options.trials)],
            workdir,
            env,
        )
        metrics = verdict_of(name)
        said_today, said_adjusted = claims(metrics)
        today, adjusted = today + said_today, adjusted + said_adjusted
        stores.append((storage, name))
        print(
            f"null study {seed}: gain {metrics.get(names.VAL_GAIN, 0):+.2f} pt, p today "
            f"{metrics.get(names.VAL_GAIN_UNADJUSTED_P_VALUE, 1):.3g}, adjusted "
            f"{metrics.get(names.VAL_GAIN_P_VALUE, 1):.3g}; {time.time() - started:.0f} s, "
            f"{children_cpu() - cpu:.0f} CPU s",
            flush=True,
        )
    total = options.studies
    print(
        f"null studies claiming a winner: today's test {wilson(today, total)}; adjusted "
        f"{wilson(adjusted, total)}"
    )
    draws, today, adjusted = resampled(stores, 2000, min(10, options.trials - 2))
    print(
        f"resampled sub-studies (trial 0 and 10 others): today's test {wilson(today, draws)}; "
        f"adjusted {wilson(adjusted, draws)}",
        flush=True,
    )
    run(["download", "--source", str(options.source.resolve())], workdir, env)
    for seed in options.power_seeds:
        name = f"power-seed-{seed}"
        started, cpu = time.time(), children_cpu()
        run(
            ["tune", "--arch", "mlp", "--n-trials", str(options.trials), "--seed", str(seed)]
            + ["--study-name", name, "--storage", storage, "--start-from", "seed"],
            workdir,
            env,
        )
        metrics = verdict_of(name)
        said_today, said_adjusted = claims(metrics)
        print(
            f"seed-start study, seed {seed}: gain {metrics.get(names.VAL_GAIN, 0):+.2f} pt "
            f"({metrics.get(names.VAL_GAIN_LOW, 0):+.2f} to "
            f"{metrics.get(names.VAL_GAIN_HIGH, 0):+.2f}), "
            f"p today {metrics.get(names.VAL_GAIN_UNADJUSTED_P_VALUE, 1):.2g}, adjusted "
            f"{metrics.get(names.VAL_GAIN_P_VALUE, 1):.2g}: claims today {said_today}, adjusted "
            f"{said_adjusted}; {time.time() - started:.0f} s, {children_cpu() - cpu:.0f} CPU s",
            flush=True,
        )


if __name__ == "__main__":
    main()
