"""The search space a trial samples: the start preset with a sampled learning rate, hidden size
and epochs (and, for a wide search, batch size and schedule); its sampler; the preset's own
values, trial 0's."""

from __future__ import annotations

import optuna
from numpy.random import SeedSequence

from pipeline.config import SCHEDULES, TrainConfig, architecture, train_config
from pipeline.tracking import names
from pipeline.tune_config import BATCH_SIZES, TuneConfig
from pipeline.tuning import ranges
from pipeline.tuning.baseline import epochs_from_curve

SEARCHED = ("learning_rate", "hidden_size", "epochs")


def sampler(
    tune: TuneConfig, share: int = 0, joined: int | None = None
) -> optuna.samplers.BaseSampler:
    """The sampler of the share-th process of a worker: of the worker that created the study
    (joined None), or of one that joined it (joined: its pid). Each draws from its own seed: a
    process seeded like another would propose the other's random points again."""
    seed = tune.seed
    if (share, joined) != (0, None):
        seed = int(SeedSequence([tune.seed, share, joined or 0]).generate_state(1)[0])
    if tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)


def trial_params(trial: optuna.trial.FrozenTrial) -> dict[str, object]:
    """A trial's configuration: its sampled params, and the epoch count its curve chose."""
    params = dict(trial.params)
    if names.EPOCHS_ATTR in trial.user_attrs:
        params["epochs"] = trial.user_attrs[names.EPOCHS_ATTR]
    return params


def preset_params(tune: TuneConfig, arch: str) -> dict[str, object] | None:
    """The start preset's values of the searched params, when the ranges hold them (the
    epoch count left to the curve, when it chooses it); None when they exclude it, or when
    the preset's length is a step budget rather than an epoch count."""
    preset = architecture(arch).presets[tune.start_from]
    if "max_steps" in preset:
        return None
    params = {name: preset[name] for name in SEARCHED}
    inside = all(
        low <= params[name] <= high for name, (low, high) in ranges.initial(tune, arch).items()
    )
    if tune.search == "wide":
        config = train_config(arch, tune.start_from)  # the dataclass's defaults fill the rest
        params.update(
            batch_size=config.batch_size, learning_rate_schedule=config.learning_rate_schedule
        )
        inside = inside and params["batch_size"] in BATCH_SIZES
    if epochs_from_curve(tune, arch):
        del params["epochs"]
    return params if inside else None


def edge_params(trial: optuna.trial.FrozenTrial) -> dict[str, object]:
    """A trial's configuration as far as its edges mean something: none of the preset trial's
    (its values were given, not searched: the default epoch range ends at the preset's own
    count); an epoch count its curve chose only where the curve reached a new high then, not
    where it tied an earlier epoch's (a tie goes to the later epoch, so a flat end would look
    like a curve still rising at the top of its range)."""
    if names.PRESET in trial.user_attrs:
        return {}
    params = trial_params(trial)
    if names.EPOCHS_ATTR in trial.user_attrs:
        values, chosen = trial.intermediate_values, trial.user_attrs[names.EPOCHS_ATTR]
        if chosen not in values or values[chosen] <= values.get(chosen - 1, -1.0):
            del params["epochs"]
    return params


def ranges_for(trial: optuna.Trial, tune: TuneConfig, arch: str) -> ranges.Ranges:
    """The ranges the trial samples from: the study's, widened first where its best so far
    lies at an edge (see ranges)."""
    study = trial.study
    try:
        best = edge_params(study.best_trial)
    except ValueError:  # no trial completed yet
        best = None
    return ranges.widen(study, tune, arch, best, trial.number)


def suggest(trial: optuna.Trial, tune: TuneConfig, arch: str, space: ranges.Ranges) -> TrainConfig:
    """The trial's configuration: the start preset (--start-from) with values sampled from
    space replacing learning rate, hidden size and epochs (its other settings, such as
    initialiser, schedule and batch size, stay the preset's, unless the search is wide). Where
    the curve chooses the epochs, the trial trains the range's top."""
    low, high = (int(bound) for bound in space["epochs"])
    epochs = high if epochs_from_curve(tune, arch) else trial.suggest_int("epochs", low, high)
    wide = {}
    if tune.search == "wide":
        wide = dict(
            batch_size=trial.suggest_categorical("batch_size", BATCH_SIZES),
            learning_rate_schedule=trial.suggest_categorical("learning_rate_schedule", SCHEDULES),
        )
    return train_config(
        arch,
        tune.start_from,
        learning_rate=trial.suggest_float("learning_rate", *space["learning_rate"], log=True),
        hidden_size=trial.suggest_int("hidden_size", *space["hidden_size"], log=True),
        epochs=epochs,
        seed=tune.seed,
        validation_fraction=tune.validation_fraction,
        early_stopping=epochs_from_curve(tune, arch),
        **wide,
    )
