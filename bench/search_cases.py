"""Does a default study find the gain that is there? Cases with headroom, unpruned and pruned.

    python bench/search_cases.py unpruned --cases small-2k noisy seed --seeds 0 1 --workdir W
    python bench/search_cases.py replay --workdir W
    python bench/search_cases.py default --cases small-2k noisy seed --seeds 0 1 --workdir W

Cases: bench/cases.py.

`unpruned`: a 20-trial study per case and sampler seed with `--pruner none` (every trial trains
its whole curve), its CPU seconds. `replay`: every unpruned study replayed under pruners (see
pruner_replay.replay) in its own order and in --orders random orders of its trials after trial
0: how often a pruner stops every configuration within 0.1 pt of the unpruned best (the winner
killed), and the share of the unpruned epochs it trains. `default`: a default `pipeline tune
--retrain-best` study per case and seed (extra options by --tune-args, e.g. today's ranges),
with its pruned share, epochs, range edges, validation and test gains (MLflow's records) and CPU;
with --test-anyway an unclaimed best is retrained too, to see what the test would have said.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

import mlflow
import numpy as np
import optuna
from cases import CASES, VALIDATION, case_source
from common import Workspace, children_cpu  # bench/, beside this script
from pruner_replay import replay
from tune_budget import epochs_trained
from tune_verdict import gain_words, retrained

from pipeline import data, paired, tracking
from pipeline.tracking import names
from pipeline.tune_config import TuneConfig
from pipeline.tuning import verdict
from pipeline.tuning.baseline import retrain
from pipeline.tuning.pruning import TolerantHalving
from pipeline.tuning.pruning import pruner as pipeline_pruner
from pipeline.tuning.search import trial_params

REPO = Path(__file__).resolve().parents[1]
P = optuna.pruners


def tune(work: Workspace, source: Path, case: str, seed: int, name: str, extra) -> dict:
    """A study of the case (data downloaded into its own folder); its CPU seconds and wall time."""
    folder, fraction = case_source(work, source, case)
    data_dir = work.folder / f"data-{case}"
    work.pipeline("download", "--source", folder, "--data-dir", data_dir)
    cpu, started = children_cpu(), time.perf_counter()
    work.pipeline(
        "tune",
        "--study-name",
        name,
        "--storage",
        work.optuna_storage,
        "--seed",
        seed,
        "--data-dir",
        data_dir,
        "--checkpoint-dir",
        work.folder / f"checkpoints-{case}",
        "--validation-fraction",
        fraction,
        *CASES[case][2],
        *extra,
    )
    return {"cpu": children_cpu() - cpu, "wall": time.perf_counter() - started}


def unpruned(options, work: Workspace) -> None:
    for case in options.cases:
        for seed in options.seeds:
            name = f"{case}-none-{seed}"
            if name in optuna.get_all_study_names(work.optuna_storage):
                continue
            cost = tune(
                work, options.source, case, seed, name, ("--pruner", "none", *options.extra)
            )
            study = optuna.load_study(study_name=name, storage=work.optuna_storage)
            print(
                f"{name}: best {study.best_value:.4f} {study.best_trial.params}, "
                f"{epochs_trained(study)} epochs, {cost['cpu']:.0f} CPU-s",
                flush=True,
            )


def candidates(longest: int, tune_config: TuneConfig) -> dict[str, P.BasePruner]:
    halving = P.SuccessiveHalvingPruner
    return {
        "today: halving from epoch 3": halving(3, reduction_factor=3),
        "pipeline's default": pipeline_pruner(tune_config, "mlp", VALIDATION),
        "halving from epoch 5": halving(5, reduction_factor=3),
        "halving from epoch 5, keep half": halving(5, reduction_factor=2),
        "halving from epoch 7": halving(7, reduction_factor=3),
        "median after epoch 5": P.MedianPruner(n_startup_trials=5, n_warmup_steps=5),
        "hyperband 1..": P.HyperbandPruner(1, longest, reduction_factor=3),
        "percentile 33 after epoch 3": P.PercentilePruner(33, 5, 3),
        "halving from epoch 6": halving(6, reduction_factor=3),
        "halving from epoch 8": halving(8, reduction_factor=3),
        "halving from epoch 7, keep a quarter": halving(7, reduction_factor=4),
        "halving from epoch 7, keep half": halving(7, reduction_factor=2),
        "median after epoch 7": P.MedianPruner(n_startup_trials=5, n_warmup_steps=7),
        **{
            f"tolerant halving from {first}, {noise:g} SE": TolerantHalving(
                first, 3, VALIDATION, errors=noise
            )
            for first in (3, 5, 7)
            for noise in (0.5, 1, 2)
        },
    }


def replayed(options, work: Workspace) -> None:
    storages = [
        work.optuna_storage,
        *(f"sqlite:///{w.resolve() / 'optuna.db'}" for w in options.more),
    ]
    studies = [
        (name, storage)
        for storage in storages
        for name in optuna.get_all_study_names(storage)
        if "-none-" in name
        and len(optuna.load_study(study_name=name, storage=storage).trials) >= options.complete
    ]
    rng = np.random.default_rng(0)
    tally: dict[str, list[tuple[bool, float]]] = {}
    for name, storage in sorted(studies):
        trials = [
            t
            for t in optuna.load_study(study_name=name, storage=storage).trials
            if t.state == optuna.trial.TrialState.COMPLETE
        ]
        best = max(t.value for t in trials)
        full = sum(len(t.intermediate_values) for t in trials)
        longest = max(max(t.intermediate_values) for t in trials)
        orders = [list(range(len(trials)))]
        orders += [[0, *(1 + rng.permutation(len(trials) - 1))] for _ in range(options.orders)]
        line = []
        for label, _ in candidates(longest, TuneConfig()).items():
            killed, share = 0, 0.0
            for index, order in enumerate(orders):
                pruner = candidates(longest, TuneConfig())[label]  # fresh state per replay
                epochs, kept = replay([trials[i] for i in order], pruner, f"{name}-{index}", True)
                killed += kept < best - 0.001
                share += epochs / full
                tally.setdefault(label, []).append((kept < best - 0.001, epochs / full))
            line.append(
                f"{label}: killed {killed}/{len(orders)}, epochs {share / len(orders):.2f}"
            )
        print(f"{name} ({len(trials)} trials, {full} epochs, best {best:.4f}):", flush=True)
        for each in line:
            print("   ", each, flush=True)
    print("all studies and orders:")
    for label, results in tally.items():
        killed = sum(k for k, _ in results)
        share = np.mean([s for _, s in results])
        print(
            f"  {label:<40} winner killed {killed}/{len(results)} "
            f"({100 * killed / len(results):.1f} %), epochs {share:.2f}",
            flush=True,
        )


def default(options, work: Workspace) -> None:
    for case in options.cases:
        for seed in options.seeds:
            name = f"{case}-{options.label}-{seed}"
            extra = ("--retrain-best", *options.extra)
            cost = tune(work, options.source, case, seed, name, extra)
            study = optuna.load_study(study_name=name, storage=work.optuna_storage)
            tags, metrics = (lambda run: (run.data.tags, run.data.metrics))(work.study_run(name))
            pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
            at = sorted(t.user_attrs.get(names.PRUNED_AT_ATTR) for t in pruned)
            evaluated = retrained(work, name)
            test = "test gain"
            if evaluated is None and options.test_anyway:
                evaluated = retrained_anyway(work, case, study)
                test = "not claimed; had it been retrained (by this bench), test gain"
            if evaluated is not None:
                test += f" {gain_words(mlflow.get_run(evaluated).data.metrics, 'test')}"
            else:
                test = "not retrained"
            epochs = epochs_trained(study)
            print(
                f"{name}: pruned {len(pruned)}/{len(study.trials)} at epochs {at}; {epochs} "
                f"epochs; best {study.best_trial.params}; "
                f"val gain {gain_words(metrics, 'val')} ({trials_only(study)}); {test}; "
                f"edges: {tags.get(names.RANGE_EDGES)}; ranges: {tags.get(names.RANGES)}; "
                f"settled: {tags.get(names.SEARCH_SETTLED)}; {cost['cpu']:.0f} CPU-s",
                flush=True,
            )


def trials_only(study: optuna.Study) -> str:
    """The best's adjusted p-value had only the trials, not their epoch counts, been counted."""
    best, baseline = study.best_trial, verdict.preset_trial(study)
    if baseline is None or best.number == baseline.number:
        return "the preset is the best"
    answers = [
        paired.unpack(t.system_attrs[names.VAL_CORRECT_ATTR])
        for t in study.get_trials(states=(verdict.COMPLETE,))
        if t.number not in (best.number, baseline.number)
    ]
    chosen, base = (
        paired.unpack(t.system_attrs[names.VAL_CORRECT_ATTR]) for t in (best, baseline)
    )
    return f"p={paired.after_selection(chosen, answers, base).p_value:.2g} counting trials only"


def retrained_anyway(work: Workspace, case: str, study: optuna.Study) -> str | None:
    """Retrain an unclaimed best as --retrain-best would have (its baseline too): what the test
    would have said. The evaluate run's id (None: the preset trial is the best)."""
    best, attrs = study.best_trial, study.user_attrs
    if best.number == getattr(verdict.preset_trial(study), "number", None):
        return None
    tune_config = TuneConfig(
        arch=attrs[names.ARCH_ATTR],
        study_name=study.study_name,
        seed=attrs[names.SEED_ATTR],
        validation_fraction=attrs[names.FRACTION_ATTR],
        start_from=attrs[names.START_ATTR],
    )
    data_dir = work.folder / f"data-{case}"
    retrain(
        tune_config,
        tune_config.arch,
        trial_params(best),
        data_dir,
        work.folder / f"checkpoints-{case}",
        data.load_dataset(data_dir).digest,
        tracking.Store(work.env["MLFLOW_TRACKING_URI"]),
    )
    return retrained(work, study.study_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("unpruned", "replay", "default"))
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data" / "mnist")
    parser.add_argument("--cases", nargs="+", default=["small-2k", "noisy", "seed"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--orders", type=int, default=20, help="random orders per replay")
    parser.add_argument(
        "--complete", type=int, default=20, help="replay studies of this many trials"
    )
    parser.add_argument("--label", default="default", help="the default studies' name part")
    parser.add_argument("--tune-args", default="", help="more tune options")
    parser.add_argument(
        "--test-anyway",
        action="store_true",
        help="default: retrain an unclaimed best too, to see what the test would have said",
    )
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--more", type=Path, nargs="*", default=[], help="replay: more workdirs")
    options = parser.parse_args()
    options.extra = tuple(shlex.split(options.tune_args))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    work = Workspace.create(options.workdir, "search-cases-")
    if options.stage != "replay":
        work.pipeline("init-stores", "--storage", work.optuna_storage)
    {"unpruned": unpruned, "replay": replayed, "default": default}[options.stage](options, work)


if __name__ == "__main__":
    main()
