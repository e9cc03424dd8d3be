"""Tuning on real MNIST: does a study beat the default preset within a CPU budget, and what does
pruning save?

    python bench/tune_budget.py --arch mlp --trials 30 [--workers 1] [--pruning-seeds 0 1]
    python bench/tune_budget.py --arch lstm --trials 12 --pruning-seeds

For the arch given, in a temporary working directory (or --workdir, kept) with its own stores
(data from --source):
1. the default preset: `pipeline train` + `pipeline evaluate` (test accuracy, wall time);
2. a study: `pipeline tune --retrain-best` with TPE and the default pruner (the default preset is
   its first trial): best validation accuracy, the retrained best's test accuracy (the evaluate
   stage, the only place the test set is read), trials, epochs trained, wall time, trials per
   hour, and the resident memory of the process that ran trial 1 and the last trial;
3. for each --pruning-seeds seed: the same sampler seed and trial count with `--pruner none` and
   the default pruner (or each of --pruners): epochs trained and best validation accuracy of each.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

import optuna
from common import Workspace  # bench/, beside this script

from pipeline.tracking import names
from pipeline.tune_config import TuneConfig
from pipeline.tuning.search import trial_params

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PRUNER = TuneConfig().pruner


def epochs_trained(study: optuna.Study) -> int:
    """Epochs actually run: a pruned trial counts up to the epoch it was stopped at."""
    total = 0
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            total += trial.user_attrs[names.TRAINED_ATTR]
        elif trial.state == optuna.trial.TrialState.PRUNED:
            total += trial.user_attrs[names.PRUNED_AT_ATTR]
    return total


def study(
    work: Workspace,
    name: str,
    arch: str,
    trials: int,
    pruner: str,
    seed: int,
    workers: int = 1,
    retrain: bool = False,
    search: str = "standard",
    extra: tuple[str, ...] = (),
):
    storage = work.optuna_storage
    args = [
        "tune",
        "--arch",
        arch,
        "--n-trials",
        str(-(-trials // workers)),
        "--pruner",
        pruner,
        "--search",
        search,
        "--study-name",
        name,
        "--storage",
        storage,
        "--seed",
        str(seed),
        *extra,
    ]
    started = time.perf_counter()
    out = work.pipeline(*args, workers=workers)
    seconds = time.perf_counter() - started
    found = optuna.load_study(study_name=name, storage=storage)
    test = None
    if retrain:  # what --retrain-best does: train the best configuration, then evaluate it
        best = trial_params(found.best_trial)
        options = [f"--{key.replace('_', '-')}={value}" for key, value in best.items()]
        test, _ = train_and_evaluate(work, arch, *options)
    return found, seconds, test, out


def train_and_evaluate(work: Workspace, arch: str, *options: str) -> tuple[float, float]:
    """(test accuracy, seconds) of `pipeline train` with options, then `pipeline evaluate`."""
    started = time.perf_counter()
    _, evaluated = work.train_and_evaluate("--arch", arch, *options)
    return evaluated.data.metrics[names.TEST_ACCURACY], time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--arch", default="mlp")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pruning-seeds", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--skip-budget", action="store_true", help="only the pruning comparison")
    parser.add_argument("--search", default="standard", help="pipeline tune --search")
    parser.add_argument(
        "--pruners",
        nargs="+",
        default=["none", DEFAULT_PRUNER],
        help="for the comparison; without none, no ratio is printed",
    )
    parser.add_argument(
        "--tune-args", default="", help='more tune options, e.g. "--epochs-range 19 20"'
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep the stores here (default: a new temporary folder)"
    )
    options = parser.parse_args()
    extra = tuple(shlex.split(options.tune_args))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    arch = options.arch
    work = Workspace.create(options.workdir, "bench-tune-")  # kept: its studies can be replayed
    work.pipeline("download", "--source", options.source)
    work.pipeline("init-stores", "--storage", work.optuna_storage)
    if not options.skip_budget:
        test, seconds = train_and_evaluate(work, arch)
        print(f"{arch} default preset: test {test:.4f}  ({seconds:.0f} s)", flush=True)
        found, seconds, tuned_test, _ = study(
            work,
            f"budget-{arch}",
            arch,
            options.trials,
            DEFAULT_PRUNER,
            0,
            options.workers,
            retrain=True,
            search=options.search,
        )
        rss = [
            t.user_attrs.get(names.RSS_ATTR)
            for t in found.trials
            if names.RSS_ATTR in t.user_attrs
        ]
        print(
            f"{arch} tuned ({options.workers} worker(s), TPE seed 0, {DEFAULT_PRUNER}, "
            f"{options.search} search): "
            f"{len(found.trials)} trials, {epochs_trained(found)} epochs, "
            f"{seconds:.0f} s "
            f"({3600 * len(found.trials) / seconds:.1f} trials/h); best val "
            f"{found.best_value:.4f} {trial_params(found.best_trial)}; retrained test "
            f"{tuned_test:.4f} ({100 * (tuned_test - test):+.2f} pt vs the preset); "
            f"RSS after first/last trial {rss[:1]} / {rss[-1:]} MB",
            flush=True,
        )
    for seed in options.pruning_seeds:
        results = {}
        for pruner in options.pruners:
            results[pruner], seconds, _, _ = study(
                work,
                f"prune-{pruner}-{seed}",
                arch,
                options.trials,
                pruner,
                seed,
                search=options.search,
                extra=extra,
            )
            print(
                f"{arch} seed {seed} pruner {pruner:<9}: {options.trials} trials, "
                f"{epochs_trained(results[pruner])} epochs, best val "
                f"{results[pruner].best_value:.4f}, {seconds:.0f} s",
                flush=True,
            )
        compared = [p for p in options.pruners if p != "none" and "none" in options.pruners]
        for pruner in compared:
            ratio = epochs_trained(results[pruner]) / epochs_trained(results["none"])
            delta = 100 * (results[pruner].best_value - results["none"].best_value)
            print(
                f"{arch} seed {seed} {pruner}: pruned/unpruned epochs {ratio:.2f}, best "
                f"value {delta:+.2f} pt",
                flush=True,
            )


if __name__ == "__main__":
    main()
