"""Studies whose verdict can be trusted, on real MNIST: per arch, start preset, sampler seed and
pruner, what a study finds against its trial 0, on validation and on test.

    python bench/tune_verdict.py --arch mlp --trials 20 --starts seed default --seeds 0 1 \
        --pruners halving none [--workdir DIR] [--tune-args "--epochs-range 2 20"]

In one working directory with its own stores (data from --source), for each arch:
1. per sampler seed, each preset of --starts and the default preset, trained (as `train` makes
   it: that seed, early stopping) and evaluated: the model a study's trial 0 is, and the
   baseline its tuned model's test_gain is over;
2. for each start preset, sampler seed and pruner: `pipeline tune --start-from START
   --retrain-best`: trials, epochs trained, pruned share, the val gain over trial 0 with its
   interval and p-value (the tune run's metrics), whether it retrained, the retrained model's test
   accuracy, its paired test gain over trial 0's model (from the evaluate runs' per-image
   results, beside the test_gain the study logged) and over the default preset's, and the CPU
   seconds of the study;
3. for a retrained best from a start other than default: the same searched values on the
   default preset's base (its initialiser and batch size): how much of the gap that remains to
   the default preset is the start preset's other settings rather than the searched values.

The objective never reads the test set: only the evaluate stage does, after a study.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import mlflow
import optuna
from common import Workspace, children_cpu  # bench/, beside these scripts
from tune_budget import epochs_trained

from pipeline import paired
from pipeline.tracking import names

REPO = Path(__file__).resolve().parents[1]


def train_and_evaluate(work: Workspace, arch: str, *options: str) -> tuple[str, float]:
    """(evaluate run id, test accuracy) of `pipeline train` with options, then `evaluate`."""
    _, evaluated = work.train_and_evaluate("--arch", arch, *options)
    return evaluated.info.run_id, evaluated.data.metrics[names.TEST_ACCURACY]


def retrained(work: Workspace, study_name: str) -> str | None:
    """The evaluate run of the model --retrain-best trained for a study, if it trained one."""
    tuned = work.runs("train", **{names.TUNED_FROM: study_name})
    if not tuned:
        return None
    return work.newest("evaluate", **{names.EVALUATED_RUN: tuned[0].info.run_id}).info.run_id


def correct(evaluation_run: str):
    text = mlflow.artifacts.load_text(f"runs:/{evaluation_run}/test_correct.txt")
    return paired.unpack(text)


def gain_words(metrics: dict, split: str) -> str:
    keys = names.GAINS[split]
    if keys[0] not in metrics:
        return "none"
    gain, low, high, p_value = (metrics[key] for key in keys)
    return f"{gain:+.2f} pt [{low:+.2f}, {high:+.2f}] p={p_value:.2g}"


def one_study(work: Workspace, arch, start, seed, pruner, trials, extra, baselines) -> None:
    name = f"verdict-{arch}-{start}-{pruner}-{seed}-{'-'.join(extra) or 'plain'}"
    storage = work.optuna_storage
    args = ["tune", "--arch", arch, "--n-trials", str(trials), "--study-name", name]
    args += ["--storage", storage, "--seed", str(seed), "--pruner", pruner]
    args += ["--start-from", start, "--retrain-best", *extra]
    cpu = children_cpu()
    work.pipeline(*args)
    cpu = children_cpu() - cpu
    study = optuna.load_study(study_name=name, storage=storage)
    parent = work.study_run(name)
    metrics = parent.data.metrics
    line = (
        f"{arch} start {start:<7} seed {seed} pruner {pruner:<7}: {len(study.trials)} trials, "
        f"{epochs_trained(study)} epochs, pruned {metrics.get(names.PRUNED_SHARE, 0):.0%}, "
        f"best val {study.best_value:.4f}, val gain {gain_words(metrics, 'val')}, "
        f"{cpu:.0f} CPU-s"
    )
    best = {k: v for k, v in parent.data.tags.items() if k.startswith(names.BEST_PREFIX)}
    options = [
        f"--{key[len(names.BEST_PREFIX) :].replace('_', '-')}={value}"
        for key, value in best.items()
        if key != names.BEST_TRIAL_NUMBER
    ]
    tuned = retrained(work, name)
    # Not retrained: what the best would have scored (the bench reads the test set; the study
    # did not).
    if tuned is None:
        line += "; not retrained (not significant), the best trained here anyway"
        tuned, _ = train_and_evaluate(work, arch, "--preset", start, "--seed", str(seed), *options)
    tuned_metrics = mlflow.get_run(tuned).data.metrics
    baseline_run, baseline_accuracy = baselines[start]
    own = gain_words(tuned_metrics, "test")  # the study's own test_gain, when retrained
    computed = paired.compare(correct(tuned), correct(baseline_run)).evidence()
    line += (
        f"; trial 0's model (the {start} preset as train makes it, seed {seed}, evaluate run "
        f"{baseline_run[:8]}) test {baseline_accuracy:.4f}; the best's test "
        f"{tuned_metrics[names.TEST_ACCURACY]:.4f}; test gain over trial 0's model {computed}"
        f" (logged test_gain: {own})"
    )
    if start != "default":
        default_run, _ = baselines["default"]
        line += (
            "; over the default preset "
            + paired.compare(correct(tuned), correct(default_run)).evidence()
        )
    print(line, flush=True)
    if start != "default":  # the searched values on the default preset's other settings
        run_id, on_default = train_and_evaluate(work, arch, "--preset", "default", *options)
        words = paired.compare(correct(run_id), correct(tuned)).evidence()
        print(
            f"    the same searched values on the default preset's base: test {on_default:.4f}"
            f" ({words} over the {start}-based model): the part of the gap that is the {start}"
            f" preset's other settings (initialiser, batch size)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--arch", nargs="+", default=["mlp"])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--starts", nargs="+", default=["seed", "default"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--pruners", nargs="+", default=["halving"])
    parser.add_argument("--tune-args", default="", help="more tune options, quoted")
    parser.add_argument(
        "--workdir", type=Path, help="keep the stores here (default: a new temporary folder)"
    )
    options = parser.parse_args()
    extra = shlex.split(options.tune_args)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    work = Workspace.create(options.workdir, "bench-verdict-")
    work.pipeline("download", "--source", options.source)
    work.pipeline("init-stores", "--storage", work.optuna_storage)
    for arch in options.arch:
        for seed in options.seeds:
            # Each preset as `train` makes it with this seed: the model a study's trial 0 is
            # (same preset, seed, split and early stopping), its test_gain's baseline.
            baselines = {}
            for preset in dict.fromkeys([*options.starts, "default"]):
                cpu = children_cpu()
                baselines[preset] = train_and_evaluate(
                    work, arch, "--preset", preset, "--seed", str(seed)
                )
                print(
                    f"{arch} {preset} preset, seed {seed}: test {baselines[preset][1]:.4f} "
                    f"({children_cpu() - cpu:.0f} CPU-s)",
                    flush=True,
                )
            for start in options.starts:
                for pruner in options.pruners:
                    one_study(work, arch, start, seed, pruner, options.trials, extra, baselines)


if __name__ == "__main__":
    main()
