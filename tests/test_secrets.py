"""No password from any URL the user gives is printed, logged as a param or tag, or stored."""

from __future__ import annotations

import pytest
from conftest import one_line_error, runs

SECRET = "s3cr3t-pw"


def no_secret_in_store(workdir) -> None:
    """No param, tag, metric key or artifact of any run holds the password."""
    import mlflow

    frame = runs()
    assert SECRET not in frame.to_csv()
    for run_id in frame["run_id"]:
        root = mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(workdir / "dl"))
        for path in __import__("pathlib").Path(root).rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path


def test_no_password_from_a_source_url_is_printed_or_stored(cli, workdir, source, http_folder):
    url = http_folder(source).replace("http://", f"http://reader:{SECRET}@")
    result = cli("download", "--source", url, "--data-dir", workdir / "fresh")
    assert result.exit_code == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    for path in (workdir / "fresh").rglob("*.json"):
        assert SECRET not in path.read_text(), path
    no_secret_in_store(workdir)
    failed = cli("download", "--source", url + "nowhere/", "--data-dir", workdir / "other")
    assert failed.exit_code == 1 and SECRET not in failed.stdout + failed.stderr
    failed = cli("download", "--mirror", url + "nowhere/", "--data-dir", workdir / "third")
    assert failed.exit_code == 1 and SECRET not in failed.stdout + failed.stderr


def test_no_password_from_the_tracking_uri_is_printed(cli, workdir, data_dir, monkeypatch, tiny):
    from conftest import closed_port_url

    monkeypatch.setenv(
        "MLFLOW_TRACKING_URI",
        closed_port_url().replace("http://", f"http://u:{SECRET}@").rstrip("/"),
    )
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    for args in (tiny.train, ("reap",), ("report",), ("evaluate", "--run-id", "0" * 32)):
        result = cli(*args)
        assert result.exit_code == 1
        assert SECRET not in result.stdout + result.stderr, args
        assert "u:***@127.0.0.1" in one_line_error(result), args


@pytest.mark.slow
def test_no_password_from_a_live_tracking_server_url_is_printed_or_stored(workdir, data_dir, tiny):
    import subprocess
    import sys

    import mlflow
    from conftest import free_port, start_server, stop_server, subprocess_env

    port = free_port()
    server = start_server(workdir, port)
    try:
        env = {
            **subprocess_env(workdir),
            "MLFLOW_TRACKING_URI": f"http://user:{SECRET}@127.0.0.1:{port}",
        }

        def pipeline(*args) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "pipeline", *map(str, args)],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )

        trained = pipeline(*tiny.train)
        assert trained.returncode == 0, trained.stderr
        run_id = next(
            line.split()[-1]
            for line in trained.stdout.splitlines()
            if line.strip().startswith("run ")
        )
        outputs = [
            trained,
            pipeline("evaluate", "--run-id", run_id),
            pipeline("report", "--output-dir", workdir / "out"),
            pipeline("report", "--experiment", "nope"),
        ]
        for done in outputs:
            assert SECRET not in done.stdout + done.stderr, done.args
        # Where the store is named (an experiment not in it), it is named without the password.
        assert "no such experiment in http://user:***@127.0.0.1" in outputs[3].stderr
        mlflow.set_tracking_uri(f"http://127.0.0.1:{port}")
        frame = mlflow.search_runs(search_all_experiments=True)
        assert len(frame) >= 3 and SECRET not in frame.to_csv()
        assert SECRET not in (workdir / "out" / "report.md").read_text()
    finally:
        stop_server(server)


ODD_PASSWORDS = ["p@ss#w0rd/x:y", "s3cr3t-pw", "ab:cd@ef#gh?ij"]


def pieces(password: str) -> list[str]:
    """The parts of a password a client could echo when it misreads where the userinfo ends."""
    import re

    return [piece for piece in re.split(r"[@#/:?]", password) if len(piece) >= 4] + [password]


@pytest.mark.parametrize("password", ODD_PASSWORDS)
def test_no_piece_of_an_odd_password_survives_redaction(password):
    from pipeline.errors import redact, redact_text, scrub

    for url in (
        f"http://u:{password}@127.0.0.1:1",
        f"postgresql://u:{password}@127.0.0.1:9/optuna",
        f"https://reader:{password}@example.org/mnist/",
    ):
        user = url.split("://")[1].split(":")[0]
        assert redact(url) == f"{url.split('://')[0]}://{user}:***@{url.rsplit('@', 1)[1]}"
        host = url.rsplit("@", 1)[1]
        said = [
            redact(url),
            redact_text(f"cannot reach {url}: refused (see {url})"),
            # a driver that split at the first @ names the rest as the host
            scrub(f'connection to server at "{password.split("@", 1)[-1]}@{host}" failed', url),
        ]
        for text in said:
            for piece in pieces(password):
                assert piece not in text, (piece, text)
    assert redact("sqlite:///mlflow.db") == "sqlite:///mlflow.db"
    assert redact("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


@pytest.mark.parametrize("password", ODD_PASSWORDS)
def test_no_piece_of_an_odd_password_is_printed_by_a_stage(cli, workdir, monkeypatch, password):
    from conftest import free_port

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://u:{password}@127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    reaped = cli("reap")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{workdir / 'mlflow.db'}")
    storage = f"postgresql://tuner:{password}@127.0.0.1:{free_port()}/optuna"
    tuned = cli("tune", "--n-trials", "1", "--storage", storage)
    for result in (reaped, tuned):
        assert result.exit_code == 1
        one_line_error(result)
        for piece in pieces(password):
            assert piece not in result.stdout + result.stderr, (piece, result.stderr)


def test_short_pieces_of_a_password_are_not_echoed_as_a_host():
    """A client that ends the userinfo at the first # reads the rest ("x#1") as the host's: no
    piece of the password is printed there, however short."""
    from pipeline.errors import scrub

    url = "postgresql://tuner:pw#x#1@127.0.0.1:9/optuna"
    said = scrub("failed to resolve host 'x#1@127.0.0.1': Name or service not known", url)
    assert "x#1" not in said and "1@" not in said, said
    assert "127.0.0.1" in said  # the host stays
    # A short piece elsewhere in a message (a port, a count) is left alone.
    assert scrub("port 1 of 1", url) == "port 1 of 1"
