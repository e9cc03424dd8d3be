"""How often a study claims a winner that is not there, and whether it still finds one that is.

    python bench/verdict_null.py --source ../shared/data/mnist [--studies 20] [--trials 20]
                                 [--power-seeds 0 1] [--workdir DIR]

Null studies: each of --studies is a study whose --trials trials all train the MLP's default
preset as a study's preset trial does (its epochs the ceiling, the epoch its validation curve
chooses, pipeline.early_stopping), each trial from its own initialisation and shuffle seed, on
the study's own validation split (seed = the study's number) of all of --source: every trial is
the preset again up to its luck, as near-copies of it in a real study would be. (Near-copy
ranges in `pipeline tune` share one seed, so its trials were too alike to disagree on enough
images: 0 claims either way in 11 studies.) Trial 0 is the baseline; the best of the others on
the validation images is compared with it two ways: today's test (exact McNemar on the images
that chose it, as `val_gain_unadjusted_p_value`) and the verdict's own, adjusted for the choice
(`val_gain_p_value`, pipeline.paired.after_selection). A claim is "better beyond noise"
(gain > 0, p < 0.05); claims in studies with a 95 % Wilson interval. Then 2,000 resampled
sub-studies (trial 0 and 10 of its others at random) the same two ways. Each trial's per-image
answers are kept in --workdir, so an interrupted run goes on where it stopped, and a second
process with --helper (same --workdir) trains studies from the last down until the two meet.

Power: `pipeline tune --start-from seed` (default ranges and pruner, --trials) on all of
--source, one per --power-seeds seed: the verdict, adjusted and not.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from common import Workspace, children_cpu  # bench/, beside this script

from pipeline import data, early_stopping, paired
from pipeline.tracking import names
from pipeline.tune_config import TuneConfig
from pipeline.tuning.baseline import preset_config


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


def null_trial(splits: data.Splits, study: int, trial: int) -> np.ndarray:
    """One trial of a null study: the default MLP preset as a study's preset trial trains it,
    from its own seed; its per-image answers on the validation images at the chosen epoch."""
    from pipeline import fitting
    from pipeline.keras_runtime import keras

    seed = int(np.random.SeedSequence([study, trial]).generate_state(1)[0])
    config = replace(preset_config(TuneConfig(seed=study), "mlp"), seed=seed)
    keras.utils.set_random_seed(seed)
    model = fitting.new_model(config, len(splits.y_train))
    x_train, x_val = splits.x_train.astype(np.float32), splits.x_val.astype(np.float32)
    curve, answers = [], []
    for _ in range(config.epochs):
        model.fit(x_train, splits.y_train, batch_size=config.batch_size, epochs=1, verbose=0)
        correct = model.predict_on_batch(x_val).argmax(axis=1) == splits.y_val
        curve.append(float(correct.mean()))
        answers.append(correct)
    chosen = early_stopping.best_epoch(curve, (early_stopping.FIRST_EPOCH, config.epochs))
    fitting.clear_state()
    return answers[chosen - 1]


def null_study(dataset: data.Dataset, study: int, trials: int, folder: Path) -> list[np.ndarray]:
    """Every trial's per-image answers (trial 0 first), trained or read from folder."""
    splits = data.split_train_validation(dataset, 0.1, study)
    answers = []
    for trial in range(trials):
        path = folder / f"study{study}-trial{trial}.npy"
        if not path.is_file():
            np.save(path.with_suffix(".tmp.npy"), null_trial(splits, study, trial))
            path.with_suffix(".tmp.npy").rename(path)
        answers.append(np.load(path))
    return answers


def claims(best: np.ndarray, others: list[np.ndarray], baseline: np.ndarray) -> tuple[bool, bool]:
    """(today's test claims, the adjusted verdict claims) for best chosen among others."""
    return (
        paired.compare(best, baseline).significant,
        paired.after_selection(best, others, baseline).significant,
    )


def chosen(trials: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The best of trials on the validation images (the first on a tie) and the rest."""
    best = max(range(len(trials)), key=lambda i: (trials[i].sum(), -i))
    return trials[best], [t for i, t in enumerate(trials) if i != best]


def resampled(studies: list[list[np.ndarray]], draws: int, size: int) -> tuple[int, int, int]:
    """(draws, today's claims, adjusted claims) over sub-studies of trial 0 and `size` others."""
    rng = np.random.default_rng(0)
    today = adjusted = 0
    for draw in range(draws):
        base, *others = studies[draw % len(studies)]
        best, rest = chosen([others[i] for i in rng.choice(len(others), size, replace=False)])
        said_today, said_adjusted = claims(best, rest, base)
        today, adjusted = today + said_today, adjusted + said_adjusted
    return draws, today, adjusted


def helper(options: argparse.Namespace, work: Workspace) -> None:
    """A second process on another core: trains the null studies from the last down, and stops
    at the first one the main run (going up) has begun."""
    work.pipeline("download", "--source", options.source.resolve())
    dataset = data.load_dataset(work.folder / "data" / "mnist")
    folder = work.folder / "null"
    folder.mkdir(exist_ok=True)
    for study in reversed(range(options.studies)):
        if (folder / f"study{study}-trial0.npy").exists():
            return
        null_study(dataset, study, options.trials, folder)
        print(f"helper: null study {study} trained", flush=True)


def null_studies(options: argparse.Namespace, work: Workspace) -> None:
    work.pipeline("download", "--source", options.source.resolve())
    dataset = data.load_dataset(work.folder / "data" / "mnist")
    folder = work.folder / "null"
    folder.mkdir(exist_ok=True)
    today = adjusted = 0
    studies = []
    for study in range(options.studies):
        started = time.process_time()
        trials = null_study(dataset, study, options.trials, folder)
        best, rest = chosen(trials[1:])
        said_today, said_adjusted = claims(best, rest, trials[0])
        today, adjusted = today + said_today, adjusted + said_adjusted
        gain = paired.compare(best, trials[0])
        adjusted_p = paired.after_selection(best, rest, trials[0]).p_value
        print(
            f"null study {study}: trial 0 {100 * trials[0].mean():.2f} %, best of "
            f"{len(trials) - 1} {100 * best.mean():.2f} %, gain {gain.points()[0]:+.2f} pt, "
            f"p today {gain.p_value:.3g}, adjusted {adjusted_p:.3g}; "
            f"{time.process_time() - started:.0f} CPU s",
            flush=True,
        )
        studies.append(trials)
    total = options.studies
    print(
        f"null studies claiming a winner: today's test {wilson(today, total)}; adjusted "
        f"{wilson(adjusted, total)}"
    )
    draws, today, adjusted = resampled(studies, options.resamples, min(10, options.trials - 2))
    print(
        f"resampled sub-studies (trial 0 and 10 others): today's test {wilson(today, draws)}; "
        f"adjusted {wilson(adjusted, draws)}",
        flush=True,
    )


def power(options: argparse.Namespace, work: Workspace) -> None:
    storage = work.optuna_storage
    for seed in options.power_seeds:
        name = f"power-seed-{seed}"
        started, cpu = time.time(), children_cpu()
        work.pipeline(
            *["tune", "--arch", "mlp", "--n-trials", str(options.trials), "--seed", str(seed)],
            *["--study-name", name, "--storage", storage, "--start-from", "seed"],
        )
        metrics = work.study_run(name).data.metrics
        gain = metrics.get(names.VAL_GAIN, 0.0)
        said_today = paired.significant(gain, metrics.get(names.VAL_GAIN_UNADJUSTED_P_VALUE, 1.0))
        said_adjusted = paired.significant(gain, metrics.get(names.VAL_GAIN_P_VALUE, 1.0))
        print(
            f"seed-start study, seed {seed}: gain {gain:+.2f} pt "
            f"({metrics.get(names.VAL_GAIN_LOW, 0):+.2f} to "
            f"{metrics.get(names.VAL_GAIN_HIGH, 0):+.2f}), "
            f"p today {metrics.get(names.VAL_GAIN_UNADJUSTED_P_VALUE, 1):.2g}, adjusted "
            f"{metrics.get(names.VAL_GAIN_P_VALUE, 1):.2g}: claims today {said_today}, adjusted "
            f"{said_adjusted}; {time.time() - started:.0f} s, {children_cpu() - cpu:.0f} CPU s",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--power-seeds", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument(
        "--helper", action="store_true", help="train studies from the last down, beside a run"
    )
    parser.add_argument(
        "--resamples", type=int, default=2000, help="sub-studies drawn from the null studies"
    )
    parser.add_argument("--only-power", action="store_true", help="the seed-start studies only")
    options = parser.parse_args()
    work = Workspace.create(options.workdir, "verdict-null-")
    if options.helper:
        return helper(options, work)
    work.pipeline("init-stores", "--storage", work.optuna_storage)
    if not options.only_power:
        null_studies(options, work)
    power(options, work)


if __name__ == "__main__":
    main()
