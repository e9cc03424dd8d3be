"""The tune stage on synthetic data: trials as nested runs, pruning, resume, workers, bad input."""

from __future__ import annotations

import re
import subprocess
import sys

import mlflow
import optuna
import pytest
from conftest import (
    add_hopeless_baseline,
    free_port,
    one_line_error,
    runs,
    start_server,
    stop_server,
    subprocess_env,
)


def storage_url(workdir) -> str:
    return f"sqlite:///{workdir / 'optuna.db'}"


def tune(cli, workdir, tiny, *args: str):
    result = cli("tune", "--storage", storage_url(workdir), *tiny.tune, *args)
    assert result.exit_code == 0, result.stderr
    return result


def study_runs(study_name: str):
    frame = runs()
    trials = frame[frame["tags.pipeline.stage"] == "trial"]
    parents = frame[frame["tags.pipeline.stage"] == "tune"]
    return parents[parents["tags.pipeline.study"] == study_name], trials[
        trials["tags.pipeline.study"] == study_name
    ]


@pytest.mark.slow
def test_mlp_study_prunes_and_resumes(cli, workdir, data_dir, tiny):
    common = ("--arch", "mlp", "--pruner", "median", "--epochs-range", "2", "3")
    common += ("--learning-rate-range", "0.005", "0.05")
    first = tune(cli, workdir, tiny, *common, "--n-trials", "2")
    assert first.stdout.count("trial ") >= 2 and "best" in first.stdout
    rate = re.search(r"with learning_rate=(\S+) hidden_size=\d+ epochs=\d+;", first.stdout)
    assert rate and rate.group(1) == f"{float(rate.group(1)):.3g}"  # rounded for people
    study = optuna.load_study(study_name="mnist-mlp", storage=storage_url(workdir))
    # A hopeless trial (learning rate far below the range) must be pruned against the median.
    study.enqueue_trial({"learning_rate": 1e-7, "hidden_size": 8, "epochs": 3})
    tune(cli, workdir, tiny, *common, "--n-trials", "1")

    study = optuna.load_study(study_name="mnist-mlp", storage=storage_url(workdir))
    states = [trial.state.name for trial in study.trials]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED"]  # resume added to the same study
    parents, trials = study_runs("mnist-mlp")
    assert len(parents) == 1 and parents.iloc[0]["status"] == "FINISHED"
    parent_id = parents.iloc[0]["run_id"]
    assert len(trials) == 3
    assert set(trials["tags.mlflow.parentRunId"]) == {parent_id}
    for trial in study.trials:  # the link works both ways
        run = mlflow.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.tags["optuna.trial_number"] == str(trial.number)
        assert run.data.params["learning_rate"] == str(trial.params["learning_rate"])
        assert len(mlflow.MlflowClient().get_metric_history(run.info.run_id, "batch_loss")) > 0
    pruned = mlflow.get_run(study.trials[2].user_attrs["mlflow_run_id"])
    assert pruned.info.status == "KILLED"
    assert pruned.data.tags["pipeline.pruned"] == "true"
    assert int(pruned.data.tags["pipeline.pruned_at_epoch"]) < 3
    artifacts = {item.path for item in mlflow.MlflowClient().list_artifacts(parent_id, "study")}
    assert {"study/trials.csv", "study/optimization_history.png"} <= artifacts
    parent = mlflow.get_run(parent_id)
    assert parent.data.metrics["best_val_accuracy"] == pytest.approx(study.best_value)
    assert parent.data.tags["best.hidden_size"] == str(study.best_params["hidden_size"])
    pruned_at = study.trials[2].user_attrs["pruned_at_epoch"]
    assert (
        f"3 trials, 1 of 3 trials pruned (1 after epoch {pruned_at}); best validation accuracy "
        f"{study.best_value:.4f}" in parent.data.tags["mlflow.note.content"]
    )
    assert parent.data.metrics["pruned_share"] == pytest.approx(1 / 3)
    complete = mlflow.get_run(study.trials[0].user_attrs["mlflow_run_id"])
    assert complete.data.tags["mlflow.note.content"].startswith("Trial 0 of study mnist-mlp")
    assert complete.info.run_name.startswith("mnist-mlp-trial-0-")  # then what differs
    assert {i.dataset.name for i in complete.inputs.dataset_inputs} == {
        "mnist-train",
        "mnist-validation",
    }


@pytest.mark.slow
def test_lstm_study(cli, workdir, data_dir, tiny):
    tune(cli, workdir, tiny, "--arch", "lstm", "--n-trials", "3", "--epochs-range", "1", "2")
    study = optuna.load_study(study_name="mnist-lstm", storage=storage_url(workdir))
    assert len(study.trials) == 3
    parents, trials = study_runs("mnist-lstm")
    assert len(parents) == 1 and len(trials) == 3
    assert set(trials["params.arch"]) == {"lstm"}
    assert "RUNNING" not in set(trials["status"])


@pytest.mark.slow
def test_two_workers_share_one_study(cli, workdir, data_dir, tiny):
    assert cli("init-stores", "--storage", storage_url(workdir)).exit_code == 0
    args = [
        sys.executable,
        "-m",
        "pipeline",
        "tune",
        "--storage",
        storage_url(workdir),
        *tiny.tune,
    ]
    args += ["--n-trials", "2", "--epochs-range", "1", "2", "--pruner", "none"]
    workers = [
        subprocess.Popen(
            args,
            cwd=workdir,
            env=subprocess_env(workdir),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr
    study = optuna.load_study(study_name="mnist-mlp", storage=storage_url(workdir))
    assert sorted(trial.number for trial in study.trials) == [0, 1, 2, 3]
    assert {trial.state.name for trial in study.trials} == {"COMPLETE"}
    # Workers given one --seed still sample apart: none re-runs another's configuration.
    assert len({tuple(sorted(trial.params.items())) for trial in study.trials}) == 4
    parents, trials = study_runs("mnist-mlp")
    assert len(parents) == 1 and len(trials) == 4
    linked = {trial.user_attrs["mlflow_run_id"] for trial in study.trials}
    assert linked == set(trials["run_id"])


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("--n-trials", "0"), "--n-trials must be at least 1"),
        (("--storage", "optuna.db"), "is not a URL"),
        (("--storage", "nosuchdb://x/y"), "cannot open --storage nosuchdb://x/y"),
        (("--storage", "postgresql://tuner:s3cret@127.0.0.1:9/x"), "cannot open --storage"),
    ],
)
def test_bad_input_creates_nothing(cli, workdir, data_dir, args, fragment):
    result = cli("tune", "--n-trials", "1", *args)
    assert result.exit_code != 0
    message = one_line_error(result)
    assert fragment in message
    assert "s3cret" not in result.stdout + result.stderr
    assert not (workdir / "optuna.db").exists()
    assert len(runs()) == 0


@pytest.mark.slow
def test_postgres_workers_survive_a_killed_worker(workdir, data_dir, postgres_database, tiny):
    """Scale-out: an mlflow server on PostgreSQL, Optuna on PostgreSQL, three workers, one of
    them SIGKILLed mid-trial: its trial is retried and its MLflow run does not stay RUNNING."""

    storage = postgres_database()
    port = free_port()
    server = start_server(workdir, port, backend=postgres_database())
    try:
        _three_workers_one_killed(workdir, storage, f"http://127.0.0.1:{port}", tiny)
    finally:
        stop_server(server)


def _three_workers_one_killed(workdir, storage: str, tracking_uri: str, tiny) -> None:
    import signal
    import time

    env = {**subprocess_env(workdir), "MLFLOW_TRACKING_URI": tracking_uri}
    base = [sys.executable, "-m", "pipeline"]
    init = subprocess.run(
        [*base, "init-stores", "--storage", storage],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert init.returncode == 0, init.stderr
    args = [*base, "tune", "--storage", storage, *tiny.tune, "--n-trials", "3", "--pruner", "none"]
    args += ["--epochs-range", "25", "30", "--heartbeat", "2"]
    workers = [
        subprocess.Popen(
            args,
            cwd=workdir,
            env=env,
            text=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    victim, killed_trial, deadline = None, None, time.time() + 300
    # One storage for the whole poll: each load_study(URL) would open (and keep) a connection
    # pool, and on a loaded machine the poll outran PostgreSQL's 100 connections.
    polled = optuna.storages.RDBStorage(storage)
    while victim is None and time.time() < deadline:
        time.sleep(0.5)
        try:
            study = optuna.load_study(study_name="mnist-mlp", storage=polled)
        except KeyError:
            continue
        for trial in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
            pid = int(trial.user_attrs.get("worker", ":0").rsplit(":", 1)[1])
            if pid in {worker.pid for worker in workers} and "mlflow_run_id" in trial.user_attrs:
                victim = next(worker for worker in workers if worker.pid == pid)
                killed_trial = trial.number
                break
    assert victim is not None, "no trial started"
    time.sleep(1)
    victim.send_signal(signal.SIGKILL)
    for worker in workers:
        _, stderr = worker.communicate(timeout=900)
        if worker is not victim:
            assert worker.returncode == 0, stderr

    study = optuna.load_study(study_name="mnist-mlp", storage=storage)
    states = {trial.number: trial.state.name for trial in study.trials}
    assert states[killed_trial] == "FAIL"
    retries = [
        trial for trial in study.trials if trial.system_attrs.get("failed_trial") == killed_trial
    ]
    attrs = {trial.number: trial.system_attrs for trial in study.trials}
    assert [trial.state.name for trial in retries] == ["COMPLETE"], (states, attrs)
    assert retries[0].params == study.trials[killed_trial].params
    assert "RUNNING" not in states.values() and "WAITING" not in states.values()
    assert list(states.values()).count("COMPLETE") >= 6  # both survivors' trials, and the retry
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    frame = mlflow.search_runs(experiment_names=["mnist"])
    trial_runs = frame[frame["tags.pipeline.stage"] == "trial"]
    assert "RUNNING" not in set(trial_runs["status"])
    killed_run = study.trials[killed_trial].user_attrs["mlflow_run_id"]
    assert mlflow.get_run(killed_run).info.status == "KILLED"
    linked = {trial.user_attrs["mlflow_run_id"] for trial in study.trials}
    assert linked == set(trial_runs["run_id"])  # Optuna trials and MLflow runs, one to one


@pytest.mark.slow
def test_a_new_study_starts_with_the_default_preset(cli, workdir, data_dir):
    from pipeline.architectures import REGISTRY

    tune_args = ("--arch", "mlp", "--n-trials", "1", "--validation-fraction", "0.2")
    result = cli("tune", "--storage", storage_url(workdir), *tune_args)
    assert result.exit_code == 0, result.stderr
    study = optuna.load_study(study_name="mnist-mlp", storage=storage_url(workdir))
    preset = REGISTRY["mlp"].presets["default"]
    # The MLP's learning rate is constant: its epochs come from the curve, not the sampler.
    assert study.trials[0].params == {key: preset[key] for key in study.trials[0].params}
    assert set(study.trials[0].params) == {"learning_rate", "hidden_size"}
    assert study.metric_names == ["val_accuracy"]
    run = mlflow.get_run(study.trials[0].user_attrs["mlflow_run_id"])
    for key in ("learning_rate", "hidden_size", "epochs", "batch_size"):  # the preset trained
        assert run.data.params[key] == str(preset[key]), key


CREATE = """
import sys, time
from pipeline.tuning import storage as study_storage
from pipeline.tuning.study import create_or_load
from pipeline.config import TuneConfig
start = float(sys.argv[2])
tune = TuneConfig(storage=sys.argv[1])
storage = study_storage.open_storage(tune.storage)
time.sleep(max(0.0, start - time.time()))  # every worker reaches the study at the same moment
study, created = create_or_load(tune, "mlp", storage, "race")
print("created" if created else "joined")
"""


@pytest.mark.slow
def test_workers_creating_one_study_at_once_enqueue_the_preset_once(cli, workdir):
    import time

    assert cli("init-stores", "--storage", storage_url(workdir)).exit_code == 0
    start = str(time.time() + 6)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE, storage_url(workdir), start],
            cwd=workdir,
            env=subprocess_env(workdir),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), outputs
    assert sorted(out.strip() for out, _ in outputs) == ["created"] + ["joined"] * 3
    study = optuna.load_study(study_name="race", storage=storage_url(workdir))
    assert [trial.state.name for trial in study.trials] == ["WAITING"]


@pytest.mark.slow
def test_a_study_name_reused_for_another_arch_is_refused(cli, workdir, data_dir, tiny):
    tune(
        cli,
        workdir,
        tiny,
        "--arch",
        "mlp",
        "--study-name",
        "shared",
        "--n-trials",
        "1",
        "--epochs-range",
        "1",
        "2",
    )
    before = len(runs())
    result = cli(
        "tune",
        "--storage",
        storage_url(workdir),
        *tiny.tune,
        "--arch",
        "lstm",
        "--study-name",
        "shared",
        "--n-trials",
        "1",
    )
    assert result.exit_code == 1
    assert "study shared tunes mlp, not lstm" in one_line_error(result)
    assert len(runs()) == before
    study = optuna.load_study(study_name="shared", storage=storage_url(workdir))
    assert len(study.trials) == 1


@pytest.mark.slow
def test_wide_search_also_searches_batch_size_and_schedule(cli, workdir, data_dir, tiny):
    from pipeline.architectures import REGISTRY
    from pipeline.config import BATCH_SIZES, SCHEDULES

    preset = REGISTRY["mlp"].presets["default"]
    seeded = tune(
        cli,
        workdir,
        tiny,
        "--arch",
        "mlp",
        "--search",
        "wide",
        "--study-name",
        "seeded",
        "--hidden-size-range",
        "8",
        "512",
        "--n-trials",
        "1",
    )
    assert seeded.exit_code == 0
    study = optuna.load_study(study_name="seeded", storage=storage_url(workdir))
    assert study.trials[0].params == {
        "learning_rate": preset["learning_rate"],
        "hidden_size": preset["hidden_size"],
        "epochs": preset["epochs"],
        "batch_size": preset["batch_size"],
        "learning_rate_schedule": preset.get("learning_rate_schedule", "constant"),
    }

    wide = ("--arch", "mlp", "--search", "wide", "--study-name", "wide", "--pruner", "none")
    tune(cli, workdir, tiny, *wide, "--epochs-range", "1", "2", "--n-trials", "4")
    study = optuna.load_study(study_name="wide", storage=storage_url(workdir))
    assert len(study.trials) == 4
    for trial in study.trials:
        assert trial.params["batch_size"] in BATCH_SIZES
        assert trial.params["learning_rate_schedule"] in SCHEDULES
        params = mlflow.get_run(trial.user_attrs["mlflow_run_id"]).data.params
        assert params["batch_size"] == str(trial.params["batch_size"])
        assert params["learning_rate_schedule"] == trial.params["learning_rate_schedule"]
        # One unit for every trial of a study that searches the schedule: percent of the run.
        assert set(trial.intermediate_values) <= {50, 100}

    before = len(runs())
    result = cli(
        "tune",
        "--storage",
        storage_url(workdir),
        *tiny.tune,
        "--arch",
        "mlp",
        "--study-name",
        "wide",
        "--n-trials",
        "1",
    )
    assert result.exit_code == 1
    assert "study wide was made with --search wide, not standard" in one_line_error(result)
    assert len(runs()) == before
    assert len(optuna.load_study(study_name="wide", storage=storage_url(workdir)).trials) == 4


@pytest.mark.slow
def test_a_worker_runs_its_trials_in_fresh_processes(cli, workdir, data_dir, tiny):
    """Keras keeps memory of every fit: a worker's trials run --trials-per-process at a time in
    child processes, each share sampling from its own seed, every trial a child of the study's
    run."""
    import os
    import socket

    tune(
        cli,
        workdir,
        tiny,
        "--arch",
        "mlp",
        "--n-trials",
        "4",
        "--trials-per-process",
        "2",
        "--sampler",
        "random",
        "--pruner",
        "none",
        "--epochs-range",
        "1",
        "2",
    )
    study = optuna.load_study(study_name="mnist-mlp", storage=storage_url(workdir))
    trials = study.trials
    assert [trial.state.name for trial in trials] == ["COMPLETE"] * 4
    assert {trial.user_attrs["worker"] for trial in trials} == {
        f"{socket.gethostname()}:{os.getpid()}"
    }
    processes = [trial.user_attrs["process"] for trial in trials]
    assert processes[0] == processes[1] != processes[2] == processes[3]
    assert os.getpid() not in processes
    assert all(trial.user_attrs["rss_mb"] > 0 for trial in trials)
    # A second process seeded like the first would propose the first's points again.
    assert trials[2].params != trials[0].params and trials[3].params != trials[1].params
    parents, trial_runs = study_runs("mnist-mlp")
    assert len(parents) == 1 and len(trial_runs) == 4
    assert set(trial_runs["tags.mlflow.parentRunId"]) == set(parents["run_id"])
    assert set(trial_runs["experiment_id"]) == set(parents["experiment_id"])


@pytest.mark.slow
def test_a_trial_process_that_dies_fails_its_trial_and_the_study_run(cli, workdir, data_dir, tiny):
    """A child killed by a signal (the OOM killer, say): one line, its trial FAIL, its run and
    the study's run ended, nothing left RUNNING."""
    import os
    import signal
    import threading
    import time

    killed = []

    def kill_the_running_trial() -> None:
        deadline = time.time() + 300
        while not killed and time.time() < deadline:
            time.sleep(0.5)
            try:
                study = optuna.load_study(study_name="mnist-mlp", storage=storage_url(workdir))
            except KeyError:
                continue
            for trial in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
                if "process" in trial.user_attrs:
                    time.sleep(1)
                    os.kill(trial.user_attrs["process"], signal.SIGKILL)
                    killed.append(trial.number)
                    return

    killer = threading.Thread(target=kill_the_running_trial, daemon=True)
    killer.start()
    result = cli(
        "tune",
        "--storage",
        storage_url(workdir),
        *tiny.tune,
        "--arch",
        "mlp",
        "--n-trials",
        "2",
        "--pruner",
        "none",
        "--epochs-range",
        "30",
        "40",
    )
    killer.join()
    assert killed
    assert result.exit_code == 1
    assert re.fullmatch(r"Error: trial process \d+ died \(SIGKILL\)", one_line_error(result))
    study = optuna.load_study(study_name="mnist-mlp", storage=storage_url(workdir))
    assert [trial.state.name for trial in study.trials] == ["FAIL"]
    parents, trial_runs = study_runs("mnist-mlp")
    assert list(trial_runs["status"]) == ["KILLED"]
    assert list(parents["status"]) == ["FAILED"]


@pytest.mark.slow
def test_timeout_counts_from_the_worker_start_across_its_processes(cli, workdir, data_dir, tiny):
    """--timeout: no trial starts after it, and a trial process's start-up (seconds: it
    imports MLflow) counts."""
    result = tune(
        cli,
        workdir,
        tiny,
        "--arch",
        "mlp",
        "--n-trials",
        "3",
        "--trials-per-process",
        "1",
        "--timeout",
        "1",
        "--pruner",
        "none",
        "--epochs-range",
        "1",
        "2",
    )
    assert "0 finished trials" in result.stdout
    study = optuna.load_study(study_name="mnist-mlp", storage=storage_url(workdir))
    assert [trial.state.name for trial in study.trials] == []
    parents, _ = study_runs("mnist-mlp")
    assert list(parents["status"]) == ["FINISHED"]


def test_the_default_pruner_judges_no_trial_before_epoch_3():
    """Successive halving from epoch 3 (15 % of a schedule): an early epoch's accuracy hardly
    ranks a trial's final one (bench/pruner_replay.py), so a hopeless trial still trains three
    epochs, then stops."""
    from pipeline.config import TuneConfig
    from pipeline.tuning.pruning import pruner

    for arch, search, first in (
        ("mlp", "standard", 3),
        ("lstm", "standard", 15),
        ("mlp", "wide", 15),
    ):
        tune = TuneConfig(arch=arch, search=search)
        study = optuna.create_study(direction="maximize", pruner=pruner(tune, arch))
        good = study.ask()
        for step in range(1, 31):
            good.report(0.9, step)
            assert not good.should_prune()
        study.tell(good, 0.9)
        hopeless = study.ask()
        for step in range(1, 31):
            hopeless.report(0.1, step)
            if hopeless.should_prune():
                break
        assert step == first, (arch, search)


def test_the_best_epoch_count_is_the_latest_best_within_the_range():
    from pipeline.tuning.trials import best_epoch

    curve = [0.99, 0.90, 0.95, 0.93, 0.95, 0.94]
    assert best_epoch(curve, (2, 6)) == 5  # epoch 1 is below the range; a tie goes to the later
    assert best_epoch(curve, (2, 4)) == 3
    assert best_epoch(curve, (2, 3)) == 3


@pytest.mark.slow
def test_under_a_constant_learning_rate_a_trial_trains_the_range_top_and_keeps_its_best_epoch(
    cli, workdir, data_dir, tiny
):
    """Epoch k of a long trial trains as a k-epoch trial: every trial trains the top of the
    range, its epoch count is its best validation epoch, and --retrain-best trains that."""
    from pipeline.tuning.trials import best_epoch

    common = ("--arch", "mlp", "--sampler", "random", "--pruner", "none")
    common += ("--epochs-range", "2", "5", "--learning-rate-range", "0.2", "1.0")
    first = tune(cli, workdir, tiny, *common, "--n-trials", "3")
    # The ranges exclude the preset: a stand-in baseline that the study's best beats for sure.
    add_hopeless_baseline(storage_url(workdir), "mnist-mlp")
    result = tune(cli, workdir, tiny, *common, "--n-trials", "1", "--retrain-best")
    assert "no preset trial ran" in first.stdout
    assert "beats trial 3 (the default preset)" in result.stdout
    study = optuna.load_study(study_name="mnist-mlp", storage=storage_url(workdir))
    client = mlflow.MlflowClient()
    assert {trial.state.name for trial in study.trials} == {"COMPLETE"}
    dropped = 0  # trials whose last epoch was below their best (these learning rates overshoot)
    for trial in study.trials:
        if trial.number == 3:
            continue  # the stand-in baseline
        assert "epochs" not in trial.params  # the sampler learns nothing about epochs
        run = mlflow.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.params["epochs"] == "5"
        history = sorted(
            client.get_metric_history(run.info.run_id, "val_accuracy"),
            key=lambda metric: metric.step,
        )
        curve = [metric.value for metric in history]
        assert len(curve) == 5
        chosen = trial.user_attrs["epochs"]
        assert chosen == best_epoch(curve, (2, 5))
        assert trial.value == pytest.approx(max(curve[1:]))
        assert run.data.tags["pipeline.best_epoch"] == str(chosen)
        # The pruner sees what the trial would score if stopped: its best accuracy so far.
        running = [max(curve[:epoch]) for epoch in range(1, 6)]
        assert [trial.intermediate_values[step] for step in range(1, 6)] == pytest.approx(running)
        dropped += curve[-1] < trial.value
        assert re.search(
            rf"trial +{trial.number} .* epochs={chosen} ", first.stdout + result.stdout
        )
    assert dropped  # else the test could not tell the best epoch from the last
    best = study.best_trial
    parents, _ = study_runs("mnist-mlp")
    assert parents.iloc[0]["tags.best.epochs"] == str(best.user_attrs["epochs"])
    frame = runs()
    retrained = frame[frame["tags.pipeline.tuned_from"] == "mnist-mlp"]
    assert list(retrained["params.epochs"]) == [str(best.user_attrs["epochs"])]


@pytest.mark.slow
def test_a_journal_study_fails_the_trials_of_processes_that_ended(cli, workdir, data_dir, tiny):
    """A journal has no heartbeat: a worker opening the study fails the RUNNING trials whose
    process ended (here SIGKILLed after it took a trial), and leaves a live process's alone."""
    import signal
    import subprocess
    import sys

    import optuna
    from conftest import subprocess_env

    from pipeline.tuning.owners import OWNER_ATTR, gone, process_identity
    from pipeline.tuning.storage import open_storage

    storage = f"journal:///{workdir / 'optuna.log'}"
    tune = ("tune", "--arch", "mlp", "--n-trials", "1", "--storage", storage, *tiny.tune)
    assert cli(*tune).exit_code == 0
    first = optuna.load_study(study_name="mnist-mlp", storage=open_storage(storage)).trials[0]
    assert gone(first.user_attrs[OWNER_ATTR])  # its trial process named itself, and has ended
    script = (
        "import os, signal, optuna\n"
        "from pipeline.tuning.owners import OWNER_ATTR, process_identity\n"
        "from pipeline.tuning.storage import open_storage\n"
        f"study = optuna.load_study(study_name='mnist-mlp', storage=open_storage({storage!r}))\n"
        "trial = study.ask()\n"
        "trial.set_user_attr(OWNER_ATTR, process_identity())\n"
        "print(trial.number, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=workdir,
        env=subprocess_env(workdir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    dead = int(killed.stdout.split()[-1])
    study = optuna.load_study(study_name="mnist-mlp", storage=open_storage(storage))
    live = study.ask()  # this process's, alive
    live.set_user_attr(OWNER_ATTR, process_identity())
    assert cli(*tune).exit_code == 0
    states = {
        t.number: t.state
        for t in optuna.load_study(study_name="mnist-mlp", storage=open_storage(storage)).trials
    }
    assert states[dead] == optuna.trial.TrialState.FAIL
    running = [n for n, state in states.items() if state == optuna.trial.TrialState.RUNNING]
    assert running == [live.number]


def test_a_trials_process_is_judged_ended_only_on_this_machine_and_namespace():
    from pipeline.tuning.owners import gone, process_identity

    me = process_identity()
    assert me is not None and not gone(me)
    boot, namespace, pid, started = me.split("/")
    assert gone(f"{boot}/{namespace}/{pid}/{int(started) + 1}")  # its pid reused by another
    assert not gone(f"another-boot/{namespace}/{pid}/1")  # another machine: not judged
    assert not gone(f"{boot}/pid:[1]/{pid}/1")  # another container: not judged
    assert not gone("garbled")


# Run the CLI with a note on stdout when Optuna or MLflow is first imported.
IMPORT_PROBE = """
import sys
class Seen:
    def find_spec(self, name, path=None, target=None):
        if name in ("optuna", "mlflow"):
            print("IMPORTING", name, flush=True)
        return None
sys.meta_path.insert(0, Seen())
from pipeline.cli.app import run
run(sys.argv[1:])
"""


@pytest.mark.slow
def test_a_study_says_what_it_does_from_its_first_moment(workdir, data_dir, tiny):
    """The first line comes before Optuna and MLflow are imported; then the study and its run,
    then the first trial's start, before any trial's result; every line reaches a pipe as it is
    printed."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, "tune", "--storage", storage_url(workdir)]
        + [*tiny.tune, "--n-trials", "2", "--epochs-range", "2", "3", "--pruner", "none"],
        cwd=workdir,
        env=subprocess_env(workdir),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("tune mlp: 2 trials of study mnist-mlp in sqlite:///"), lines
    assert lines[1].startswith("IMPORTING"), lines
    status = next(i for i, line in enumerate(lines) if line.startswith("study mnist-mlp created"))
    started = next(i for i, line in enumerate(lines) if "training (up to 3 epochs)" in line)
    finished = [i for i, line in enumerate(lines) if re.match(r"trial +\d .* best ", line)]
    assert status < started < finished[0] and len(finished) == 2, lines
    assert sum("training (up to" in line for line in lines) == 1  # the worker's first only
