"""What a trial process runs: the objective (one nested MLflow run per trial, its configuration
from the search space) and a worker's share of trials."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import optuna

from pipeline import data, fitting, paired, run_names, tracking
from pipeline.config import TrainConfig
from pipeline.early_stopping import FIRST_EPOCH, best_epoch
from pipeline.errors import PipelineError
from pipeline.tracking import names
from pipeline.tune_config import TuneConfig
from pipeline.tuning import evidence, owners, ranges
from pipeline.tuning.baseline import epochs_from_curve, preset_config
from pipeline.tuning.pruning import PruneOnValidation, by_percent, pruner
from pipeline.tuning.search import ranges_for, sampler, suggest, trial_params
from pipeline.tuning.storage import failures_named, open_storage


@dataclass(frozen=True)
class TrialDone:
    """A trial a worker's process finished, and the study's best trial then (None: none yet)."""

    trial: optuna.trial.FrozenTrial
    best: optuna.trial.FrozenTrial | None

    @property
    def params(self) -> dict[str, object]:
        return trial_params(self.trial)

    @property
    def pruned_at(self) -> int | None:
        """The epochs a pruned trial trained."""
        return self.trial.user_attrs.get(names.PRUNED_AT_ATTR)


@dataclass(frozen=True)
class TrialStarted:
    """A worker's first trial has begun training (its process is up and TensorFlow loaded)."""

    number: int
    params: dict[str, object]
    epochs: int  # the epochs it trains at most


def epoch_window(space: ranges.Ranges, config: TrainConfig, preset: bool) -> tuple[int, int]:
    """The epoch counts a trial's curve chooses among: the study's range, or for the preset
    trial the range `train` chooses among (so it is the model `train` makes)."""
    if preset:
        return FIRST_EPOCH, config.epochs
    low, high = space["epochs"]
    return int(low), int(high)


def check_data(study: optuna.Study, study_name: str, digest: str | None) -> None:
    """Refuse data other than the study's: its trials would be scored on other images."""
    made = study.user_attrs.get(names.DIGEST_ATTR)
    if made is not None and digest is not None and made != digest:
        raise PipelineError(
            f"study {study_name} scores its trials on data of digest {made}, not this data "
            f"({digest}): download that data again, or choose another --study-name"
        )


def _objective(
    worker: Worker, splits: list[data.Splits], on_start: Callable[[TrialStarted], None]
):
    tune, arch, data_dir = worker.tune, worker.arch, worker.data_dir
    study_name = tune.study_for(arch)

    def objective(trial: optuna.Trial) -> float:
        # First: a journal study judges a RUNNING trial by the process it names.
        trial.set_user_attr(names.OWNER_ATTR, owners.process_identity())
        space = ranges_for(trial, tune, arch)
        config = suggest(trial, tune, arch, space)  # records its params, a preset trial's too
        if is_preset := names.PRESET in trial.user_attrs:
            config = preset_config(tune, arch)
        on_start(TrialStarted(trial.number, dict(trial.params), config.epochs))
        fitting.clear_state()  # no model or graph growth over a long study
        name = run_names.trial(study_name, trial.number, config.differences())
        with tracking.run(
            "trial",
            name,
            _tags(arch, study_name, trial.number, config, splits),
            killed_on=(optuna.TrialPruned,),
            parent_run_id=worker.parent_run_id,
        ) as run:
            _own(trial, run.run_id, worker.name)
            # `epochs` once it is known: the count the trial's value is of (see _settle).
            run.log_params({k: v for k, v in config.params().items() if k != "epochs"})
            from_curve = epochs_from_curve(tune, arch)
            steps = fitting.steps_per_epoch(config, len(splits[0].y_train))
            percent = by_percent(tune, arch)
            pruning = PruneOnValidation(trial, run, config, percent, from_curve, steps)
            window = epoch_window(space, config, is_preset)
            low, high = window if from_curve else (config.epochs, config.epochs)
            folds = evidence.fit_folds(
                config, splits, run, data_dir, pruning, range(low, high + 1)
            )
            # The objective is a model --retrain-best reproduces: the one the trial ends with,
            # or, where the curve chooses the epochs, the one after its best epoch count; over
            # folds, the mean of the folds' models after that epoch count.
            epochs, outcome = config.epochs, f"{config.epochs} epochs; validation accuracy"
            if from_curve:
                epochs, outcome = _choose_epochs(trial, run, config, folds.curve, window)
            value = folds.curve[epochs - 1]
            if len(splits) > 1:
                outcome = _cross_validated(run, folds, epochs, value, outcome)
            _settle(run, folds, epochs, value)
            run.set_tags({names.OPTUNA_TRIAL_STATE: "COMPLETE", names.PRUNED: "false"})
            run.describe(
                f"Trial {trial.number} of study {study_name}: {arch} with learning rate "
                f"{config.learning_rate:.3g}, hidden size {config.hidden_size}, "
                f"{outcome} {value:.4f}."
            )
            trial.set_user_attr(names.TRAINED_ATTR, config.epochs)
            _record_evidence(trial, folds, epochs, range(low, high + 1))
            trial.set_user_attr(names.RSS_ATTR, round(owners.resident_megabytes()))
            return value

    return objective


def _tags(
    arch: str, study_name: str, number: int, config: TrainConfig, splits: list[data.Splits]
) -> dict[str, str]:
    """A trial run's tags: what it trains, on which data, for which study."""
    return {
        names.ARCH: arch,
        names.DATA_DIGEST: splits[0].digest,
        names.CONFIG_HASH: tracking.config_hash(config.params()),
        names.STUDY: study_name,
        names.OPTUNA_TRIAL_NUMBER: str(number),
        **({names.FOLDS: str(len(splits))} if len(splits) > 1 else {}),
    }


def _choose_epochs(
    trial: optuna.Trial, run, config: TrainConfig, curve: list[float], window: tuple[int, int]
) -> tuple[int, str]:
    """The epoch count the trial's curve chose within window, recorded on the trial and on its
    run (a tag, and a name with that count), and the outcome in words."""
    epochs = best_epoch(curve, window)
    trial.set_user_attr(names.EPOCHS_ATTR, epochs)
    run.set_tags({names.BEST_EPOCH: str(epochs)})
    chosen = replace(config, epochs=epochs).differences()
    run.rename(run_names.trial(trial.study.study_name, trial.number, chosen))
    return epochs, f"best epoch count {epochs} of {config.epochs}; validation accuracy"


def _record_evidence(
    trial: optuna.Trial, folds: evidence.Folds, epochs: int, chosen_among: range
) -> None:
    """Which validation images the trial's model got right, after its epoch count and after
    every other count its curve chose among: the verdict's evidence. System attributes, kept off
    optuna-dashboard's pages (Optuna has no public setter for a trial's; its storage's is)."""
    answers = paired.pack(folds.correct(epochs))
    trial.storage.set_trial_system_attr(trial._trial_id, names.VAL_CORRECT_ATTR, answers)
    others = {str(e): paired.pack(folds.correct(e)) for e in chosen_among if e != epochs}
    if others:
        attr = names.VAL_CORRECT_EPOCHS_ATTR
        trial.storage.set_trial_system_attr(trial._trial_id, attr, others)


def _settle(run, folds: evidence.Folds, epochs: int, value: float) -> None:
    """The run's epochs param and, at its last epoch's step, its latest validation metrics:
    those its value is of (MLflow shows a run's metrics at their latest step)."""
    run.log_params({"epochs": epochs})
    metrics = {names.VAL_ACCURACY: value, names.VAL_LOSS: folds.loss(epochs)}
    run.log_metrics(metrics, step=folds.last_step)


def _own(trial: optuna.Trial, run_id: str, worker: str) -> None:
    """Name the trial's MLflow run, its worker and the process that runs it, on the trial."""
    trial.set_user_attr(names.RUN_ATTR, run_id)
    trial.set_user_attr(names.WORKER_ATTR, worker)
    trial.set_user_attr(names.PROCESS_ATTR, os.getpid())


def _cross_validated(run, folds: evidence.Folds, epochs: int, value: float, outcome: str) -> str:
    """Log each fold's validation accuracy after epochs and their mean; the outcome in words."""
    for fold, accuracy in enumerate(folds.accuracies(epochs), start=1):
        run.log_metrics({names.FOLD_VAL_ACCURACY: accuracy}, step=fold)
    run.log_metrics({names.CROSS_VAL_ACCURACY: value})
    outcome = outcome.replace("validation accuracy", "mean validation accuracy")
    return outcome + f" over {len(folds.accuracies(epochs))} folds"


@dataclass(frozen=True)
class Worker:
    """One `pipeline tune` process's part in a study, as its trial processes need it."""

    tune: TuneConfig
    arch: str
    data_dir: Path
    parent_run_id: str  # the study's MLflow run: every trial's run is its child
    tracking_uri: str  # its store
    name: str  # host:pid of the worker
    joined: int | None  # its pid, when it joined a study another worker made (see sampler)

    def run_share(
        self,
        n_trials: int,
        deadline: float | None,
        share: int,
        tell: Callable[[TrialDone | TrialStarted], None],
    ) -> int:
        """Run up to n_trials of the study in this (fresh) process, none started after
        deadline (a time.time()): the share-th share of the worker's trials. The data is loaded
        and split once per share. Tells the worker of each finished trial; returns the trials
        it ran."""
        tune = self.tune
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        # Runs here are the study's trials: none may adopt the run `mlflow run` made.
        os.environ.pop("MLFLOW_RUN_ID", None)
        storage = open_storage(tune.storage, tune.heartbeat_seconds)
        dataset = data.load_dataset(self.data_dir)
        splits = [data.split_train_validation(dataset, tune.validation_fraction, tune.seed)]
        if tune.folds > 1:  # every training image validated once, by one of the folds
            splits = data.fold_splits(dataset, tune.folds, tune.seed)
        tracking.Store(self.tracking_uri, reap=False, step_of=self.parent_run_id).open()
        study = optuna.load_study(
            study_name=tune.study_for(self.arch),
            storage=storage,
            sampler=sampler(tune, share, self.joined),
            pruner=pruner(tune, self.arch, len(splits[0].y_val)),
        )
        check_data(study, study.study_name, dataset.digest)  # downloaded again since it began?
        # TensorFlow's import holds the GIL for seconds: done before any trial's heartbeat
        # thread starts, lest a starved heartbeat read as a dead worker to the others.
        fitting.clear_state()
        # From now, after this process's start-up; past the deadline, Optuna starts no trial.
        timeout = None if deadline is None else deadline - time.time()
        ran: list[int] = []

        def started(event: TrialStarted) -> None:
            if share == 0 and not ran:  # the worker's first: a line once its process is up
                tell(event)

        def done(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            ran.append(trial.number)
            try:  # one query for the best, not every trial of a long study
                best = study.best_trial
            except ValueError:  # no trial completed yet
                best = None
            tell(TrialDone(trial, best))

        with warnings.catch_warnings(), failures_named(tune.storage):
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.optimize(
                _objective(self, splits, started),
                n_trials=n_trials,
                timeout=timeout,
                catch=(PipelineError,),
                callbacks=[done],
            )
        return len(ran)
