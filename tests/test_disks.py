"""Resources running out: full and read-only disks and stores, a fresh store opened by several
processes at once, a model too big for memory. Each is one line, and what was there stays."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import one_line_error, runs


def mount_small_disk(folder, options: str = "size=1m"):
    """A 1 MB tmpfs at folder: a real disk that fills up. Needs root (CI runs as root)."""
    import os
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a tmpfs mount for the full-disk test: {mounted.stderr}")
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")


@pytest.fixture
def small_disk(workdir):
    """A full-able disk where the store keeps its artifacts (workdir/mlruns)."""
    import subprocess

    folder = workdir / "mlruns"
    mount_small_disk(folder)
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_disk_full_while_logging_the_model(cli, workdir, data_dir, small_disk):
    import mlflow

    result = cli(
        "train",
        "--arch",
        "mlp",
        "--epochs",
        "1",
        "--max-steps",
        "2",
        "--hidden-size",
        "512",
        "--no-progress",
    )
    assert result.exit_code == 1
    message = one_line_error(result)
    assert "No space left on device" in message and str(small_disk) in message, message
    run = runs().iloc[0]
    assert run["status"] == "FAILED"
    assert "No space left" in run["tags.pipeline.failure_reason"]
    models = mlflow.search_logged_models(
        experiment_ids=[run["experiment_id"]], output_format="list"
    )
    assert models and {model.status for model in models} == {"FAILED"}, models
    for model in models:  # no truncated files that look like a model
        folder = Path(model.artifact_location.removeprefix("file://"))
        left = [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []
        assert left == [], left
    evaluated = cli("evaluate", "--run-id", run["run_id"])
    assert evaluated.exit_code == 1 and "has no logged model" in one_line_error(evaluated)


def test_disk_full_while_writing_a_report_keeps_the_previous_one(cli, workdir, data_dir):
    import subprocess

    out = workdir / "out"
    mount_small_disk(out)
    try:
        assert cli("report", "--output-dir", out).exit_code == 0
        before = {path.name: path.read_bytes() for path in out.iterdir()}
        (out / "filler").write_bytes(b"x" * (1024 * 1024 - 24 * 1024))  # leaves < 24 KB
        result = cli("report", "--output-dir", out)
        assert result.exit_code == 1
        message = one_line_error(result)
        assert "No space left on device" in message and str(out) in message, message
        after = {path.name: path.read_bytes() for path in out.iterdir() if path.name != "filler"}
        assert after == before  # nothing truncated, no partial file left
    finally:
        subprocess.run(["umount", "-l", str(out)], check=False)


@pytest.mark.slow
def test_a_full_or_read_only_store_is_one_line(cli, workdir, data_dir, monkeypatch, tiny):
    import subprocess

    disk = workdir / "store"
    mount_small_disk(disk)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{disk / 'mlflow.db'}")
        assert cli("reap").exit_code == 0  # a healthy store (about 0.9 MB) on a 1 MB disk
        free = subprocess.run(
            ["df", "-k", "--output=avail", str(disk)], capture_output=True, text=True
        ).stdout.split()[-1]
        (disk / "filler").write_bytes(b"x" * max(0, (int(free) - 4) * 1024))
        result = cli(*tiny.train)
        assert result.exit_code == 1
        assert "database or disk is full" in one_line_error(result)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    read_only = workdir / "read-only"
    mount_small_disk(read_only, "ro,size=1m")
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{read_only / 'mlflow.db'}")
        result = cli(*tiny.train)
        assert result.exit_code == 1
        message = one_line_error(result)
        assert str(read_only / "mlflow.db") in message and "unable to open database" in message
    finally:
        subprocess.run(["umount", "-l", str(read_only)], check=False)


@pytest.mark.slow
def test_stages_started_at_once_on_a_fresh_store_leave_it_healthy(tmp_path):
    import subprocess
    import sys

    from conftest import subprocess_env

    for attempt in range(3):  # unserialised, 2 of 3 such starts broke the store for good
        work = tmp_path / f"fresh-{attempt}"
        work.mkdir()
        env = subprocess_env(work)  # sqlite:///<work>/mlflow.db, not created yet
        stages = [
            subprocess.Popen(
                [sys.executable, "-m", "pipeline", "reap"],
                cwd=work,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        for stage in stages:
            _, stderr = stage.communicate(timeout=300)
            assert stage.returncode == 0, stderr
        again = subprocess.run(
            [sys.executable, "-m", "pipeline", "reap"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert again.returncode == 0 and "No stale runs." in again.stdout, again.stderr


def test_a_model_too_big_for_memory_is_one_line(cli, data_dir):
    result = cli(
        "train", "--arch", "mlp", "--hidden-size", "200000", "--epochs", "1", "--no-progress"
    )
    assert result.exit_code == 1
    assert "not enough memory for this model" in one_line_error(result)
    assert runs().iloc[0]["status"] == "FAILED"


def test_a_full_data_folder_names_the_file_it_could_not_write(cli, workdir, source):
    import subprocess

    target = workdir / "small-data"
    mount_small_disk(target, "size=40k")  # room for a few of the files, not all
    try:
        for force in ((), ("--force",)):
            result = cli("download", "--source", source, "--data-dir", target, *force)
            assert result.exit_code == 1
            message = one_line_error(result)
            assert message.startswith(f"Error: cannot write {target}/"), message
            assert "No space left on device" in message
            assert [path.name for path in target.iterdir()] == [], "a partial file was left"
        assert len(runs()) == 0
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_a_read_only_study_storage_is_one_line_naming_its_file(cli, workdir, data_dir):
    """Stores made, then seen through a read-only bind mount (the files exist, nothing can be
    written): each is one line naming its file, not Optuna's "invalid data in the commit"."""
    import subprocess

    made, view = workdir / "studies", workdir / "read-only-view"
    made.mkdir()
    for name in ("optuna.db", "optuna.log"):
        kind = "sqlite" if name.endswith(".db") else "journal"
        assert cli("init-stores", "--storage", f"{kind}:///{made / name}").exit_code == 0
    (made / "optuna.log").touch()
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(made), str(view)], capture_output=True)
    if mounted.returncode != 0:
        mount_small_disk(view)  # skips, or fails in CI, saying why
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        for url, path in (
            (f"sqlite:///{view / 'optuna.db'}", view / "optuna.db"),
            (f"journal:///{view / 'optuna.log'}", view / "optuna.log"),
        ):
            result = cli("tune", "--n-trials", "1", "--storage", url)
            assert result.exit_code == 1
            assert f"{path} is read-only" in one_line_error(result), result.stderr
            assert "Traceback" not in result.stderr
        assert len(runs()) == 0  # nothing started
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, name, words",
    [("sqlite", "optuna.db", "disk is full"), ("journal", "optuna.log", "No space left")],
)
def test_a_study_storage_that_fills_mid_study_is_one_line_and_goes_on_once_freed(
    cli, workdir, data_dir, tiny, kind, name, words
):
    """A full disk under the study: one line naming the file; once space is freed the same
    study goes on (a journal keeps no partial line that would make it unreadable)."""
    import subprocess

    import optuna

    from pipeline.tune_config import TuneConfig
    from pipeline.tuning.opening import create_or_load
    from pipeline.tuning.storage import open_storage

    disk = workdir / "studies"
    mount_small_disk(disk)
    storage = f"{kind}:///{disk / name}"
    try:
        tune = TuneConfig(storage=storage, validation_fraction=0.2)  # as tiny.tune
        create_or_load(tune, "mlp", open_storage(storage), "data-mlp")  # the study exists
        free = subprocess.run(
            ["df", "-k", "--output=avail", str(disk)], capture_output=True, text=True
        ).stdout.split()[-1]
        (disk / "filler").write_bytes(b"x" * max(0, (int(free) - 4) * 1024))
        result = cli("tune", "--arch", "mlp", "--n-trials", "2", "--storage", storage, *tiny.tune)
        assert result.exit_code == 1
        message = one_line_error(result)
        assert f"the study storage {disk / name} failed" in message and words in message, message
        assert "invalid data in the commit" not in message and "reach" not in message
        assert "Traceback" not in result.stderr
        assert "RUNNING" not in set(runs()["status"])
        (disk / "filler").unlink()
        result = cli("tune", "--arch", "mlp", "--n-trials", "1", "--storage", storage, *tiny.tune)
        assert result.exit_code == 0, result.stderr
        study = optuna.load_study(study_name="data-mlp", storage=open_storage(storage))
        states = [trial.state for trial in study.trials]
        assert optuna.trial.TrialState.COMPLETE in states
        assert optuna.trial.TrialState.RUNNING not in states, states  # failed, not left running
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_journal_append_that_fails_part_way_leaves_the_journal_as_it_was(tmp_path):
    """A write cut off after its first bytes (a file-size limit: a real EFBIG part-way through
    the line) is undone: the journal ends with a whole line and the study reads as before."""
    import subprocess
    import sys

    journal = tmp_path / "optuna.log"
    script = f"""
import os, resource, signal, optuna
from pipeline.tuning.storage import open_storage
storage = open_storage("journal:///{journal}")
study = optuna.create_study(storage=storage, study_name="s")
study.add_trial(optuna.trial.create_trial(value=1.0))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
size = os.path.getsize({str(journal)!r})
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 10, size + 10))
try:
    study.add_trial(optuna.trial.create_trial(value=2.0))
except optuna.exceptions.StorageInternalError as error:
    print("refused:", error)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert "refused: [Errno 27] File too large" in done.stdout, done.stderr[-2000:]
    assert journal.read_bytes().endswith(b"}\n")
    import optuna

    from pipeline.tuning.storage import open_storage

    storage = open_storage(f"journal:///{journal}")
    study = optuna.load_study(study_name="s", storage=storage)
    study.add_trial(optuna.trial.create_trial(value=3.0))
    again = optuna.load_study(study_name="s", storage=open_storage(f"journal:///{journal}"))
    assert [trial.value for trial in again.trials] == [1.0, 3.0]


def test_a_journal_line_cut_by_a_killed_writer_is_dropped_when_next_opened(tmp_path):
    """A writer killed part-way through its line leaves that part at the end (the bytes are
    what SIGKILL mid-write leaves); the next opening drops it, so later lines stay readable."""
    import optuna

    from pipeline.tuning.storage import open_storage

    url = f"journal:///{tmp_path / 'optuna.log'}"
    study = optuna.create_study(storage=open_storage(url), study_name="s")
    study.add_trial(optuna.trial.create_trial(value=1.0))
    with (tmp_path / "optuna.log").open("ab") as journal:
        journal.write(b'{"op_code":5,"worker_id":"dead","trial_id":')  # no line end
    study = optuna.load_study(study_name="s", storage=open_storage(url))
    study.add_trial(optuna.trial.create_trial(value=2.0))
    again = optuna.load_study(study_name="s", storage=open_storage(url))
    assert [trial.value for trial in again.trials] == [1.0, 2.0]


def test_a_journal_url_reads_its_path_as_sqlites_does(cli, workdir):
    """journal:///optuna.log is a file in the working folder (as sqlite:///optuna.db), and
    journal:////abs/path an absolute one: what the README and --storage's help say."""
    assert cli("init-stores", "--storage", "journal:///optuna.log").exit_code == 0
    assert (workdir / "optuna.log").is_file()
    absolute = workdir / "studies" / "optuna.log"
    absolute.parent.mkdir()
    assert cli("init-stores", "--storage", f"journal:///{absolute}").exit_code == 0
    assert absolute.is_file()
