"""Every class of bad input, across the stages: one line, exit != 0, nothing half-done."""

from __future__ import annotations

import pytest
from conftest import FILE_NAMES, closed_port_url, corrupt, one_line_error, runs

STORE_FILES = {"mlflow.db", "mlflow.db-journal"}


def download_case(how: str | None = None, key: str = "train-images"):
    def prepare(workdir, source):
        if how:
            corrupt(source, key, how)
        return ["download", "--source", source, "--data-dir", workdir / "fresh"]

    return prepare


def missing_file(workdir, source):
    (source / FILE_NAMES["train-labels"]).unlink()
    return ["download", "--source", source, "--data-dir", workdir / "fresh"]


def bad_checksum(workdir, source):
    (source / "MD5SUMS").write_text(f"{'0' * 32}  {FILE_NAMES['test-images']}\n")
    return ["download", "--source", source, "--data-dir", workdir / "fresh"]


def unwritable(workdir, source):
    (workdir / "a-file").write_text("not a folder")
    return ["download", "--source", source, "--data-dir", workdir / "a-file" / "mnist"]


def command(*args):
    return lambda workdir, source: list(args)


CASES = {
    "corrupt gzip": (download_case("not gzip"), "corrupt gzip"),
    "truncated gzip": (download_case("truncated"), "truncated gzip"),
    "wrong magic": (download_case("wrong magic"), "wrong magic number"),
    "mismatched counts": (download_case("count mismatch", "train-labels"), "299 labels but"),
    "checksum mismatch": (bad_checksum, "checksum mismatch"),
    "missing source file": (missing_file, "missing from source folder"),
    "unwritable data dir": (unwritable, "is not writable"),
    "unreachable mirrors": (
        lambda workdir, source: [
            "download",
            "--data-dir",
            workdir / "fresh",
            "--mirror",
            closed_port_url(),
        ],
        "no mirror gave",
    ),
    "negative learning rate": (command("train", "--learning-rate", "-1"), "--learning-rate"),
    "not a number": (command("train", "--epochs", "two"), "Invalid value for '--epochs'"),
    "unknown resume run": (command("train", "--resume", "f" * 32), "no checkpoint"),
    "zero trials": (command("tune", "--n-trials", "0"), "--n-trials must be at least 1"),
    "unreachable storage": (
        command("tune", "--storage", "postgresql://tuner:hunter2@127.0.0.1:9/optuna"),
        "cannot open --storage postgresql://tuner:***@127.0.0.1:9/optuna",
    ),
    "storage is a folder": (
        lambda workdir, source: ["tune", "--storage", f"journal:///{workdir}"],
        "is a folder, not a file",
    ),
    "unknown run id": (command("evaluate", "--run-id", "0" * 32), "no run 0000"),
    "unknown model uri": (
        command("evaluate", "--model-uri", "models:/nope@champion"),
        "does not resolve",
    ),
    "unknown preset in main": (command("main", "--preset", "fast"), "--preset must be one of"),
    "unknown experiment": (command("report", "--experiment", "nope"), "no such experiment"),
    "bad reap lease": (command("reap", "--stale-after", "abc"), "Invalid value"),
    "reap options apart": (command("reap", "--include-unbeating"), "go together"),
}


def snapshot(folder) -> set[str]:
    return {
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and path.name not in STORE_FILES
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(cli, workdir, source, data_dir, case):
    prepare, fragment = CASES[case]
    args = prepare(workdir, source)
    before = snapshot(workdir)
    result = cli(*args)
    assert result.exit_code != 0
    message = one_line_error(result)  # exactly one line, and it is the last
    assert fragment in message, message
    assert "Traceback" not in result.stdout + result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    assert snapshot(workdir) - before == set(), "a partial file was left"
    frame = runs()
    assert len(frame) == 0, "a run was created for bad input"


@pytest.mark.parametrize(
    "store, fragment",
    [
        ("postgresql://tracker:hunter2@127.0.0.1:9/mlflow", "Connection refused"),
        ("sqlite:///not-a-store.db", "unable to open database file not-a-store.db: file is not"),
    ],
)
def test_a_store_that_cannot_be_opened_fails_without_retrying(
    cli, workdir, monkeypatch, store, fragment
):
    """MLflow retries opening a database for about 100 s; a stage says what is wrong at once."""
    import sys
    import time

    retries, real_sleep = [], time.sleep

    def sleep(seconds: float) -> None:  # MLflow's retry loop sleeps between its attempts
        if sys._getframe(1).f_globals.get("__name__") == "mlflow.store.db.utils":
            retries.append(seconds)
        else:
            real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    (workdir / "not-a-store.db").write_text("a text file, not a SQLite database\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    for command in (("reap",), ("ui", "--port", "9")):  # the UI checks the store as stages do
        result = cli(*command)
        assert result.exit_code == 1
        message = one_line_error(result)
        assert message.startswith("Error: cannot use tracking store"), message
        assert fragment in message, message
        assert "hunter2" not in result.stdout + result.stderr
        assert "MLflow UI" not in result.stdout  # no server was started
    assert retries == []
    assert (workdir / "not-a-store.db").read_text().startswith("a text file")
