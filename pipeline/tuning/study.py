"""The study: opened (see opening), a worker's trials run in fresh processes (see trials and
workers), the summary on the parent run, and retraining the best (see baseline)."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna

from pipeline import data, evaluation, tracking
from pipeline.errors import redact
from pipeline.tracking import names
from pipeline.tune_config import TuneConfig
from pipeline.tuning import plots, ranges, verdict, workers
from pipeline.tuning.baseline import retrain
from pipeline.tuning.opening import open_study
from pipeline.tuning.search import edge_params
from pipeline.tuning.storage import failures_named, open_storage, repairs
from pipeline.tuning.trials import (
    TrialDone,
    TrialStarted,
    Worker,
    trial_params,
)


@dataclass(frozen=True)
class StudyResult:
    """One arch's search: where it lives and what it found."""

    arch: str
    study_name: str
    parent_run_id: str
    trials: int
    pruned: int
    best_value: float | None
    best_params: dict
    verdict: str = ""  # the paired comparison of the best with the preset trial, in words
    pruning: str = ""  # how many trials were pruned, after which epochs
    search: str = ""  # the ranges it ended with, the best's edges, whether it settled
    retrained: evaluation.EvalResult | None = None
    not_retrained: str = ""  # why --retrain-best trained nothing


def _parent_run(study: optuna.Study, created: bool) -> str | None:
    """The MLflow parent run id of a study another worker created (None: make one)."""
    deadline = time.time() + 30  # user_attrs is read from the storage each time
    while not created and names.PARENT_ATTR not in study.user_attrs and time.time() < deadline:
        time.sleep(0.5)  # the worker that created the study a moment ago is making the run
    return study.user_attrs.get(names.PARENT_ATTR)  # None: its creator died early


def _description(study: optuna.Study, tune: TuneConfig, found: verdict.Verdict, ended: str) -> str:
    """The study run's description: what was searched how, how it ended, its verdict."""
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    searched = "learning rate, hidden size, epochs" + (
        ", batch size and schedule" if tune.search == "wide" else ""
    )
    start = (
        "trial 0 is that preset"
        if found.baseline is not None
        else "no preset trial: the ranges exclude it"
    )
    scored = (
        f"{tune.folds}-fold cross-validation (pruned on the first fold)"
        if tune.folds > 1
        else f"a {tune.validation_fraction:g} validation split"
    )
    return (
        f"Optuna study {study.study_name} ({tune.sampler} sampler, {tune.pruner} pruning, "
        f"trials scored by {scored}) over "
        f"{searched}, built on the {tune.start_from} preset ({start}): {len(finished)} trials, "
        f"{ended}. Verdict: {found.sentence}. One child run per trial."
    )


def _summarise(
    study: optuna.Study, tune: TuneConfig, arch: str, run: tracking.Run
) -> tuple[verdict.Verdict, str, str]:
    """Best params and value, the paired verdict, pruning, the search's ranges, the trials
    table and Optuna's plots onto the parent run; (the verdict, the pruning and the search in
    words)."""
    finished = [t for t in study.trials if t.state.is_finished()]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plots.trials_table(study).to_csv(folder / "trials.csv", index=False)
        plots.write_plots(study, folder)
        run.log_artifacts(folder, "study")
    found = verdict.judge(study, tune.start_from)
    pruned_share, pruned_words = verdict.pruning(study)
    # Where the search ended: its ranges, the best's params at their edges, whether it settled.
    described = ranges.describe(study, tune, arch)
    edges = ranges.edge_words(study, tune, arch, edge_params(found.best) if found.best else None)
    unsettled = verdict.unsettled(study)
    search = "; ".join(part for part in (f"ranges {described}", edges, unsettled) if part)
    run.set_tags(
        {
            names.OPTUNA_STORAGE: redact(tune.storage),
            names.OPTUNA_SAMPLER: tune.sampler,
            names.OPTUNA_PRUNER: tune.pruner,
            names.OPTUNA_TRIALS: str(len(finished)),
            names.OPTUNA_PRUNED: str(sum(t.state == verdict.PRUNED for t in finished)),
            names.START_FROM: tune.start_from,
            names.FOLDS: str(tune.folds),
            names.VERDICT: found.sentence,
            names.PRUNING: pruned_words,
            names.RANGES: described,
            names.RANGE_EDGES: edges or "none",
            names.SEARCH_SETTLED: str(not unsettled).lower(),
        }
    )
    run.log_metrics({names.PRUNED_SHARE: pruned_share})
    best = "no trial completed"
    if found.best is not None:
        run.log_metrics({names.BEST_VAL_ACCURACY: found.best.value})
        run.set_tags({names.best(k): str(v) for k, v in trial_params(found.best).items()})
        run.set_tags({names.BEST_TRIAL_NUMBER: str(found.best.number)})
        best = f"best validation accuracy {found.best.value:.4f} (trial {found.best.number})"
    if found.baseline is not None:
        run.set_tags({names.BASELINE_TRIAL: str(found.baseline.number)})
    if found.comparison is not None:
        run.log_metrics(names.gains("val", found.comparison.points()))
    if found.apparent is not None:
        run.log_metrics({names.VAL_GAIN_UNADJUSTED_P_VALUE: found.apparent.p_value})
    run.describe(_description(study, tune, found, f"{pruned_words}; {best}; {search}"))
    return found, pruned_words, search


def _fail_trials_of(study: optuna.Study, died: workers.ProcessDied) -> None:
    """The trial a dead child process was running: FAIL in the study, its MLflow run KILLED."""
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if trial.user_attrs.get(names.PROCESS_ATTR) == died.pid:
            tracking.finish_run(trial.user_attrs[names.RUN_ATTR], "KILLED", str(died))
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)


def _run_trials(
    study: optuna.Study, worker: Worker, on_trial: Callable[[TrialDone | TrialStarted], None]
) -> None:
    """The worker's trials, in fresh processes; a dead one's trial fails (and its run ends)."""
    tune = worker.tune
    try:
        workers.run_shares(
            worker.run_share,
            tune.n_trials,
            tune.timeout_seconds,
            tune.trials_per_process,
            on_trial,
        )
    except workers.ProcessDied as died:
        _fail_trials_of(study, died)
        raise


def tune_arch(
    tune: TuneConfig,
    arch: str,
    data_dir: Path,
    checkpoint_dir: Path,
    on_trial: Callable[[TrialDone | TrialStarted], None] = lambda _: None,
    tags: dict[str, str] | None = None,
    on_status: Callable[[str], None] = lambda _: None,
    *,
    store: tracking.Store,
) -> StudyResult:
    """Run this worker's trials of one arch's study (in fresh processes, `trials_per_process`
    at a time: see workers), then summarise the study on its parent run. on_trial hears of the
    worker's first trial starting and of every trial it finishes; on_status, in words, of the
    study and its run once they are open. Its runs go to store."""
    # The CLI prints a line per trial; Optuna's own warnings would add a traceback per failure.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # Bad URLs and unreachable servers fail here, before any study or run exists.
    storage = open_storage(tune.storage, tune.heartbeat_seconds)
    if repaired := repairs(storage):
        on_status(repaired)
    with failures_named(tune.storage):
        return _tune_arch(
            tune, arch, data_dir, checkpoint_dir, on_trial, tags, storage, on_status, store
        )


def _tune_arch(
    tune: TuneConfig,
    arch: str,
    data_dir: Path,
    checkpoint_dir: Path,
    on_trial: Callable[[TrialDone | TrialStarted], None],
    tags: dict[str, str] | None,
    storage: optuna.storages.BaseStorage,
    on_status: Callable[[str], None],
    store: tracking.Store,
) -> StudyResult:
    dataset = data.load_dataset(data_dir)
    store.open()
    study_name = tune.study_for(arch)
    study, created = open_study(tune, arch, storage, study_name, dataset.digest)
    parent = _parent_run(study, created)
    tags = {
        names.ARCH: arch,
        names.STUDY: study_name,
        names.DATA_DIGEST: dataset.digest,
        **(tags or {}),
    }
    with tracking.run("tune", f"tune-{study_name}", tags, run_id=parent) as run:
        if parent is None:
            study.set_user_attr(names.PARENT_ATTR, run.run_id)
        so_far = len(study.get_trials(deepcopy=False))
        on_status(
            f"study {study_name} "
            + ("created" if created else f"joined ({so_far} trials so far)")
            + f", MLflow run {run.run_id}; starting a trial process (it loads TensorFlow)"
        )
        worker = Worker(
            tune,
            arch,
            data_dir,
            run.run_id,
            store.uri,
            f"{socket.gethostname()}:{os.getpid()}",
            joined=None if created else os.getpid(),  # a worker joining others samples apart
        )
        _run_trials(study, worker, on_trial)
        found, pruning, search = _summarise(study, tune, arch, run)
        best, retrained, not_retrained = found.best, None, ""
        if tune.retrain_best and best is not None and found.significant:
            retrained = retrain(
                tune, arch, trial_params(best), data_dir, checkpoint_dir, dataset.digest, store
            )
        elif tune.retrain_best:
            not_retrained = (
                f"--retrain-best trained nothing for {arch}, the champion stays: "
                f"{found.sentence if best is not None else 'no trial completed'}"
            )
    finished = [t for t in study.trials if t.state.is_finished()]
    return StudyResult(
        arch,
        study_name,
        run.run_id,
        len(finished),
        sum(t.state == verdict.PRUNED for t in finished),
        best.value if best else None,
        trial_params(best) if best else {},
        found.sentence,
        pruning,
        search,
        retrained,
        not_retrained,
    )
