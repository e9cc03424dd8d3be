"""Tune workers: several on one study, trial processes that end or are killed, creation races."""

from __future__ import annotations

import re
import subprocess
import sys

import mlflow
import optuna
import pytest
from conftest import (
    PIPELINE,
    free_port,
    one_line_error,
    start,
    start_server,
    stop_server,
    subprocess_env,
    wait_for,
)
from study_helpers import storage_url, study_runs, tune

from pipeline.tracking import names


@pytest.mark.slow
def test_two_workers_share_one_study(cli, workdir, data_dir, tiny):
    assert cli("init-stores", "--storage", storage_url(workdir)).exit_code == 0
    args = [*PIPELINE, "tune", "--storage", storage_url(workdir), *tiny.tune]
    args += ["--n-trials", "2", "--epochs-range", "1", "2", "--pruner", "none"]
    workers = [start(workdir, *args) for _ in range(2)]
    for worker in workers:
        _, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr
    study = optuna.load_study(study_name="data-mlp", storage=storage_url(workdir))
    assert sorted(trial.number for trial in study.trials) == [0, 1, 2, 3]
    assert {trial.state.name for trial in study.trials} == {"COMPLETE"}
    # Workers given one --seed still sample apart: none re-runs another's configuration.
    assert len({tuple(sorted(trial.params.items())) for trial in study.trials}) == 4
    parents, trials = study_runs("data-mlp")
    assert len(parents) == 1 and len(trials) == 4
    linked = {trial.user_attrs["mlflow_run_id"] for trial in study.trials}
    assert linked == set(trials["run_id"])


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
            study = optuna.load_study(study_name="data-mlp", storage=polled)
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

    study = optuna.load_study(study_name="data-mlp", storage=storage)
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


CREATE = """
import sys, time
from pipeline.tuning import storage as study_storage
from pipeline.tuning.opening import create_or_load
from pipeline.tune_config import TuneConfig
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
    at = str(time.time() + 6)
    workers = [
        start(workdir, sys.executable, "-c", CREATE, storage_url(workdir), at) for _ in range(4)
    ]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), outputs
    assert sorted(out.strip() for out, _ in outputs) == ["created"] + ["joined"] * 3
    study = optuna.load_study(study_name="race", storage=storage_url(workdir))
    assert [trial.state.name for trial in study.trials] == ["WAITING"]


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
    study = optuna.load_study(study_name="data-mlp", storage=storage_url(workdir))
    trials = study.trials
    assert [trial.state.name for trial in trials] == ["COMPLETE"] * 4
    assert {trial.user_attrs["worker"] for trial in trials} == {
        f"{socket.gethostname()}:{os.getpid()}"
    }
    processes = [trial.user_attrs["process"] for trial in trials]
    assert processes[0] == processes[1] != processes[2] == processes[3]
    assert os.getpid() not in processes
    assert all(trial.user_attrs[names.RSS_ATTR] > 0 for trial in trials)
    # A second process seeded like the first would propose the first's points again.
    assert trials[2].params != trials[0].params and trials[3].params != trials[1].params
    parents, trial_runs = study_runs("data-mlp")
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
                study = optuna.load_study(study_name="data-mlp", storage=storage_url(workdir))
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
    study = optuna.load_study(study_name="data-mlp", storage=storage_url(workdir))
    assert [trial.state.name for trial in study.trials] == ["FAIL"]
    parents, trial_runs = study_runs("data-mlp")
    assert list(trial_runs["status"]) == ["KILLED"]
    assert list(parents["status"]) == ["FAILED"]


@pytest.mark.slow
def test_a_journal_study_fails_the_trials_of_processes_that_ended(cli, workdir, data_dir, tiny):
    """A journal has no heartbeat: a worker opening the study fails the RUNNING trials whose
    process ended (here SIGKILLed after it took a trial), and leaves a live process's alone."""
    import signal
    import subprocess
    import sys

    import optuna
    from conftest import subprocess_env

    from pipeline.tuning.owners import gone, process_identity
    from pipeline.tuning.storage import open_storage

    storage = f"journal:///{workdir / 'optuna.log'}"
    tune = ("tune", "--arch", "mlp", "--n-trials", "1", "--storage", storage, *tiny.tune)
    assert cli(*tune).exit_code == 0
    first = optuna.load_study(study_name="data-mlp", storage=open_storage(storage)).trials[0]
    assert gone(
        first.user_attrs[names.OWNER_ATTR]
    )  # its trial process named itself, and has ended
    script = (
        "import os, signal, optuna\n"
        "from pipeline.tracking import names\n"
        "from pipeline.tuning.owners import process_identity\n"
        "from pipeline.tuning.storage import open_storage\n"
        f"study = optuna.load_study(study_name='data-mlp', storage=open_storage({storage!r}))\n"
        "trial = study.ask()\n"
        "trial.set_user_attr(names.OWNER_ATTR, process_identity())\n"
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
    study = optuna.load_study(study_name="data-mlp", storage=open_storage(storage))
    live = study.ask()  # this process's, alive
    live.set_user_attr(names.OWNER_ATTR, process_identity())
    assert cli(*tune).exit_code == 0
    states = {
        t.number: t.state
        for t in optuna.load_study(study_name="data-mlp", storage=open_storage(storage)).trials
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


def kill_a_worker_in_trial_0(workdir, tune: list[str], storage: str) -> None:
    """Start `pipeline tune` (options tune, one trial) and SIGKILL it and its trial process
    once trial 0 is training (its process has named its MLflow run)."""
    import os
    import signal

    from pipeline.tuning.storage import open_storage

    def trials():
        try:
            return optuna.load_study(study_name="data-mlp", storage=open_storage(storage)).trials
        except KeyError:  # not created yet
            return []

    first = subprocess.Popen(
        [*PIPELINE, *tune, "--n-trials", "1"],
        cwd=workdir,
        env=subprocess_env(workdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: any(names.RUN_ATTR in t.user_attrs for t in trials()), 180, "trial 0 to train"
        )
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()


@pytest.mark.slow
def test_a_journal_study_whose_preset_trial_was_killed_runs_it_again(cli, workdir, data_dir):
    """SIGKILL of a worker (and its trial process) during trial 0: the next worker fails that
    trial, queues the preset again and runs it, and the verdict compares with that run."""

    from pipeline.tuning.storage import open_storage
    from pipeline.tuning.verdict import preset_trial

    storage = f"journal:///{workdir / 'optuna.log'}"
    tune = ["tune", "--arch", "mlp", "--storage", storage, "--validation-fraction", "0.2"]
    tune += ["--pruner", "none"]

    kill_a_worker_in_trial_0(workdir, tune, storage)
    result = cli(*tune, "--n-trials", "2")
    assert result.exit_code == 0, result.stderr
    study = optuna.load_study(study_name="data-mlp", storage=open_storage(storage))
    states = [trial.state.name for trial in study.trials]
    assert states == ["FAIL", "COMPLETE", "COMPLETE"], states
    assert names.PRESET in study.trials[1].user_attrs
    assert preset_trial(study).number == 1
    # The killed trial's MLflow run ended with it, not RUNNING until a reaper came by.
    killed = mlflow.get_run(study.trials[0].user_attrs[names.RUN_ATTR])
    assert killed.info.status == "KILLED", killed.info.status
    verdict_line = next(line for line in result.stdout.splitlines() if line.startswith("Verdict"))
    assert "trial 1 (the default preset" in verdict_line and "ended fail" not in verdict_line


def test_a_damaged_owner_record_is_left_alone_not_a_traceback(workdir):
    """A journal trial whose owner names no process (a hand-edited or damaged record) is left
    RUNNING for a person to judge; the worker opening the study goes on."""
    from pipeline.tuning import owners
    from pipeline.tuning.storage import open_storage

    storage = open_storage(f"journal:///{workdir / 'optuna.log'}")
    study = optuna.create_study(study_name="damaged", storage=storage)
    boot, namespace, _, _ = owners.process_identity().split("/")
    trial = study.ask()
    trial.set_user_attr(names.OWNER_ATTR, f"{boot}/{namespace}/not-a-pid/0")
    owners.fail_orphans(study)
    assert study.trials[0].state == optuna.trial.TrialState.RUNNING


def test_a_half_line_a_killed_writer_left_never_has_a_record_glued_on(workdir):
    """A trial process killed half-way through a journal append (a real partial write, then a
    real SIGKILL): its worker's FAIL record, appended through a journal it opened before, goes
    on a line of its own, and every later reader reads the study."""
    import json

    from pipeline.tuning.storage import open_storage

    path = workdir / "optuna.log"
    storage = open_storage(f"journal:///{path}")
    study = optuna.create_study(study_name="halves", storage=storage)
    trial = study.ask()
    script = (
        "import os, signal\n"
        f"journal = open({str(path)!r}, 'ab', buffering=0)\n"
        'journal.write(b\'{"op_code": 6, "worker_id": "half\')\n'
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert killed.returncode == -9 and not path.read_bytes().endswith(b"\n")
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    for line in path.read_bytes().splitlines():
        json.loads(line)  # every line one whole record
    reopened = optuna.load_study(study_name="halves", storage=open_storage(f"journal:///{path}"))
    assert [t.state for t in reopened.trials] == [optuna.trial.TrialState.FAIL]


@pytest.mark.slow
def test_a_damaged_line_anywhere_in_a_journal_is_dropped_and_named(cli, workdir, data_dir, tiny):
    """A journal an older version let grow a half line with a record glued on, in its middle:
    the next worker drops that line, says which, and the study goes on."""
    path = workdir / "optuna.log"
    journal = ("--storage", f"journal:///{path}", "--pruner", "none")  # both trials complete
    tune = ("tune", "--arch", "mlp", *journal, *tiny.tune)
    assert cli(*tune, "--n-trials", "1").exit_code == 0
    lines = path.read_bytes().splitlines(keepends=True)
    glued = b'{"op_code": 6, "worker_id": "ha' + lines[-1]  # a copy: dropping it loses nothing
    path.write_bytes(b"".join([*lines[:3], glued, *lines[3:]]))
    result = cli(*tune, "--n-trials", "1")
    assert result.exit_code == 0, result.stderr
    assert "the study journal dropped its damaged line(s) 4" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    from pipeline.tuning.storage import open_storage

    study = optuna.load_study(study_name="data-mlp", storage=open_storage(f"journal:///{path}"))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]


@pytest.mark.slow
def test_a_sqlite_study_whose_preset_trial_was_killed_retries_it_for_the_verdict(
    cli, workdir, data_dir
):
    """SIGKILL of a worker (and its trial process) during trial 0 on SQLite: the next worker's
    heartbeat check fails that trial and runs a retry of it, and the verdict compares the best
    with the retry, not "trial 0 ended fail"."""

    from pipeline.tuning.storage import open_storage
    from pipeline.tuning.verdict import preset_trial

    storage = storage_url(workdir)
    assert cli("init-stores", "--storage", storage).exit_code == 0
    tune = ["tune", "--arch", "mlp", "--storage", storage, "--validation-fraction", "0.2"]
    tune += ["--pruner", "none", "--heartbeat", "1"]

    kill_a_worker_in_trial_0(workdir, tune, storage)
    result = cli(*tune, "--n-trials", "2")
    assert result.exit_code == 0, result.stderr
    study = optuna.load_study(study_name="data-mlp", storage=open_storage(storage))
    assert study.trials[0].state.name == "FAIL"
    retried = preset_trial(study)
    assert retried.number > 0 and retried.state.name == "COMPLETE"
    verdict_line = next(line for line in result.stdout.splitlines() if line.startswith("Verdict"))
    assert f"trial {retried.number} (the default preset" in verdict_line, verdict_line
    assert "ended fail" not in verdict_line
