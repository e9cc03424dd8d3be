"""Which pruner keeps the best? Replays an unpruned study's learning curves under pruners.

    python bench/pruner_replay.py --storage sqlite:///optuna.db --study prune-none-0

Reads the complete trials of an unpruned study (say, one `bench/tune_budget.py` made with
`--pruner none`; each reported its validation accuracy after every epoch), then, for each pruner,
feeds the same trials in the same order to a new in-memory study with that pruner: a trial stops
where the pruner says so. Prints the epochs the replay trains (against the unpruned study's) and
the best value among the trials it lets finish (against the unpruned best). First, the rank
correlation (Spearman) between a trial's accuracy after epoch k and its final accuracy (its
objective): how much an early verdict can know. Each replay runs twice: the trials report each
epoch's accuracy (as `pipeline tune` does), then the best accuracy yet.

A replay keeps the unpruned study's sequence of configurations. In a real pruned study the
sampler sees pruned trials and proposes others, so a real study varies around the replay.
"""

from __future__ import annotations

import argparse

import optuna
import pandas as pd

P = optuna.pruners


def pruners(max_epochs: int) -> dict[str, optuna.pruners.BasePruner]:
    return {
        "hyperband from epoch 1": P.HyperbandPruner(1, max_epochs, reduction_factor=3),
        "hyperband from epoch 2": P.HyperbandPruner(2, max_epochs, reduction_factor=3),
        "hyperband from epoch 3": P.HyperbandPruner(3, max_epochs, reduction_factor=3),
        "successive halving from epoch 3": P.SuccessiveHalvingPruner(3, reduction_factor=3),
        "successive halving from epoch 3, keeping half": P.SuccessiveHalvingPruner(
            3, reduction_factor=2
        ),
        "successive halving from epoch 5": P.SuccessiveHalvingPruner(5, reduction_factor=3),
        "median after epoch 3": P.MedianPruner(n_startup_trials=5, n_warmup_steps=3),
        "median after epoch 6": P.MedianPruner(n_startup_trials=5, n_warmup_steps=6),
    }


def replay(
    trials: list[optuna.trial.FrozenTrial],
    pruner: optuna.pruners.BasePruner,
    name: str,
    best_so_far: bool = False,
):
    """(epochs trained, best final value) of the trials fed in order to a study with pruner,
    each reporting its accuracy after each epoch, or (best_so_far) the best accuracy yet.
    (Hyperband assigns trials to brackets by study name and trial number: name fixes that.)"""
    study = optuna.create_study(study_name=name, direction="maximize", pruner=pruner)
    epochs, finished = 0, []
    for frozen in trials:
        trial = study.ask()
        best = 0.0
        for step in sorted(frozen.intermediate_values):
            best = max(best, frozen.intermediate_values[step])
            trial.report(best if best_so_far else frozen.intermediate_values[step], step)
            epochs += 1
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, frozen.value)
            finished.append(frozen.value)
    return epochs, max(finished)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", required=True, help="an unpruned study")
    options = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    source = optuna.load_study(study_name=options.study, storage=options.storage)
    trials = [t for t in source.trials if t.state == optuna.trial.TrialState.COMPLETE]
    full = sum(len(t.intermediate_values) for t in trials)
    best = max(t.value for t in trials)
    longest = max(max(t.intermediate_values) for t in trials)
    print(f"{options.study}: {len(trials)} trials, {full} epochs, best {best:.4f}")
    for k in (1, 2, 3, 5):
        pairs = [(t.intermediate_values[k], t.value) for t in trials if k in t.intermediate_values]
        early, final = (pd.Series(values) for values in zip(*pairs, strict=True))
        rho = early.corr(final, method="spearman")
        print(f"  accuracy after epoch {k} vs final: Spearman {rho:.2f} ({len(pairs)} trials)")
    for reported in ("each epoch's accuracy", "best accuracy yet"):
        print(f"  reporting the {reported}:")
        for label, pruner in pruners(longest).items():
            epochs, kept = replay(trials, pruner, options.study, reported.startswith("best"))
            print(
                f"    {label:<46} epochs {epochs:>4} ({epochs / full:.2f}), best "
                f"{kept:.4f} ({100 * (kept - best):+.2f} pt)"
            )


if __name__ == "__main__":
    main()
