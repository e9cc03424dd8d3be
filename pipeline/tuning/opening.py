"""Opening a study: creating it, named for its objective and seeded with its start preset as
trial 0, or joining one made alike (same arch, search, start, seed, validation share and folds),
queueing its preset trial again when every run of it failed."""

from __future__ import annotations

import warnings

import optuna

from pipeline.errors import PipelineError
from pipeline.tracking import names
from pipeline.tune_config import TuneConfig
from pipeline.tuning import owners
from pipeline.tuning.pruning import pruner
from pipeline.tuning.search import preset_params, sampler
from pipeline.tuning.trials import check_data

OBJECTIVE = names.VAL_ACCURACY


class StudyMismatch(PipelineError):
    """A study made with another setting than the worker's: a one-line error that names the
    option to give (`tune`'s); a caller without that option words it its own way."""

    def __init__(self, study_name: str, option: str, made: object, given: object) -> None:
        self.study_name, self.option, self.made, self.given = study_name, option, made, given
        super().__init__(
            f"study {study_name} was made with {option} {made}, not {given}: give "
            f"{option} {made} or choose another --study-name"
        )


def _create_study(
    tune: TuneConfig, arch: str, study_name: str, digest: str | None, **kwargs
) -> optuna.Study:
    """A new study, named for its objective, marked with its arch, search and start preset,
    and seeded with that preset as trial 0 (when the ranges hold it).

    Only the worker whose create_study succeeds gets here, so the preset is enqueued once.
    """
    study = optuna.create_study(study_name=study_name, direction="maximize", **kwargs)
    with warnings.catch_warnings():  # experimental since Optuna 3.2, still the way to name it
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([OBJECTIVE])
    study.set_user_attr(names.ARCH_ATTR, arch)
    study.set_user_attr(names.SEARCH_ATTR, tune.search)
    study.set_user_attr(names.START_ATTR, tune.start_from)
    study.set_user_attr(names.SEED_ATTR, tune.seed)
    study.set_user_attr(names.FRACTION_ATTR, tune.validation_fraction)
    study.set_user_attr(names.FOLDS_ATTR, tune.folds)
    if digest is not None:
        study.set_user_attr(names.DIGEST_ATTR, digest)
    params = preset_params(tune, arch)
    if params is not None:
        study.enqueue_trial(params, user_attrs={names.PRESET: tune.start_from})
    return study


def create_or_load(tune: TuneConfig, arch: str, storage, study_name: str, digest=None):
    """(study, created): the worker whose create_study succeeds seeds it; others load it.

    A study made for another arch, search or data (digest) is a one-line error, before any
    trial or run exists.
    """
    kwargs = dict(storage=storage, sampler=sampler(tune), pruner=pruner(tune, arch))
    try:
        return _create_study(tune, arch, study_name, digest, **kwargs), True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=study_name, **kwargs)
    other = study.user_attrs.get(names.ARCH_ATTR)
    if other is not None and other != arch:
        raise PipelineError(
            f"study {study_name} tunes {other}, not {arch}: choose another --study-name"
        )
    # Trials are compared on one validation split, image by image: a worker joining with another
    # seed or validation share would score its trials on other images.
    for option, attr, given in [
        ("--search", names.SEARCH_ATTR, tune.search),
        ("--start-from", names.START_ATTR, tune.start_from),
        ("--seed", names.SEED_ATTR, tune.seed),
        ("--validation-fraction", names.FRACTION_ATTR, tune.validation_fraction),
        ("--folds", names.FOLDS_ATTR, tune.folds),
    ]:
        made = study.user_attrs.get(attr, given)  # a study made before the attribute: as given
        if made != given:
            raise StudyMismatch(study_name, option, made, given)
    check_data(study, study_name, digest)
    return study, False


def open_study(
    tune: TuneConfig, arch: str, storage, study_name: str, digest: str | None = None
) -> tuple[optuna.Study, bool]:
    """(study, created) as a worker starts: created or joined (create_or_load); a journal
    study's trials whose process ended failed (owners.fail_orphans); and a preset trial every
    run of which failed queued again."""
    study, created = create_or_load(tune, arch, storage, study_name, digest)
    if isinstance(storage, optuna.storages.JournalStorage):  # no heartbeat to fail them
        owners.fail_orphans(study)
    _queue_preset_again(study)
    return study, created


def _queue_preset_again(study: optuna.Study) -> None:
    """A preset trial that failed (its worker killed, Ctrl-C) and was not retried is queued
    again, so that the study's every claim still has its baseline."""
    presets = [t for t in study.get_trials(deepcopy=False) if names.PRESET in t.user_attrs]
    if presets and all(trial.state == optuna.trial.TrialState.FAIL for trial in presets):
        last = presets[-1]
        study.enqueue_trial(last.params, user_attrs={names.PRESET: last.user_attrs[names.PRESET]})
