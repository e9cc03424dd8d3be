"""The data cache: damaged caches refused and refetched, concurrent and interrupted downloads,
and the test set named for what it is."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import one_line_error, runs


def tamper_labels(data_dir) -> None:
    path = data_dir / "mnist.npz"
    with np.load(path) as stored:
        arrays = dict(stored)
    arrays["test_labels"][:] = 0
    with path.open("wb") as handle:
        np.savez(handle, **arrays)


def truncate(data_dir) -> None:
    path = data_dir / "mnist.npz"
    path.write_bytes(path.read_bytes()[:1000])


@pytest.mark.parametrize("damage", [tamper_labels, truncate])
def test_a_damaged_cache_is_refused_by_every_stage_and_refetched(
    cli, data_dir, source, damage, tiny
):
    damage(data_dir)
    result = cli(*tiny.train)
    assert result.exit_code == 1
    message = one_line_error(result)
    assert "mnist.npz" in message and "pipeline download --force" in message, message
    assert len(runs()) == 0  # no train run on damaged data (the fixture logged no download)
    downloaded = cli("download", "--source", source)
    assert downloaded.exit_code == 0, downloaded.stderr
    assert "Verified" not in downloaded.stdout and "Cached" in downloaded.stdout
    assert cli(*tiny.train).exit_code == 0


@pytest.mark.slow
def test_concurrent_downloads_into_one_folder_end_with_one_valid_cache(workdir, source):

    from conftest import PIPELINE, start

    from pipeline import data

    target = workdir / "shared-data"
    args = [
        *PIPELINE,
        "download",
        "--source",
        str(source),
        "--data-dir",
        str(target),
    ]
    downloads = [start(workdir, *args) for _ in range(3)]
    outputs = [process.communicate(timeout=300) for process in downloads]
    assert all(process.returncode == 0 for process in downloads), outputs
    said = sorted("Cached" if "Cached" in out else "Verified" for out, _ in outputs)
    assert said == ["Cached", "Verified", "Verified"], outputs
    assert len(data.load_dataset(target).y_train) == 300
    assert not list(target.glob(".staging-*")) and not list(target.rglob(".*.part"))


def test_a_killed_downloads_leftovers_are_removed_next_time(cli, workdir, data_dir):
    staging = data_dir / ".staging-abc123"
    staging.mkdir()
    (staging / "train-images-idx3-ubyte.gz").write_bytes(b"half a file")
    (data_dir / ".mnist.npz.k2j3.part").write_bytes(b"half an npz")
    result = cli("download", "--data-dir", data_dir)
    assert result.exit_code == 0 and "Verified" in result.stdout
    assert not staging.exists() and not list(data_dir.glob(".*.part"))


@pytest.mark.slow
def test_sigterm_during_download_says_so_and_leaves_nothing(workdir, source):
    import http.server
    import signal
    import threading
    import time

    from conftest import PIPELINE, start

    class Stalling(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b"\x1f\x8b" + b"\0" * 1000)
            time.sleep(30)  # a mirror that stops sending

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target = workdir / "data"
    try:
        source = f"http://127.0.0.1:{server.server_address[1]}/"
        process = start(workdir, *PIPELINE, "download", "--data-dir", target, "--source", source)
        deadline = time.time() + 60
        while not list(target.glob(".staging-*/*.gz")) and time.time() < deadline:
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        server.shutdown()
    assert process.returncode == 143
    assert stderr.strip().splitlines()[-1] == "Error: interrupted by SIGTERM", stderr
    assert "Traceback" not in stderr
    assert not list(target.glob(".staging-*")) and not list(target.rglob("*.gz"))


def test_evaluate_names_the_test_set_it_used(cli, data_dir, tiny):
    import mlflow

    assert cli(*tiny.train).exit_code == 0
    result = cli("evaluate", "--run-id", runs().iloc[0]["run_id"], "--no-register")
    assert result.exit_code == 0, result.stderr
    assert "on a test set that is NOT the official MNIST one (100 images" in result.stdout
    assert "official test set" not in result.stdout
    evaluation = runs()[runs()["tags.pipeline.stage"] == "evaluate"].iloc[0]
    assert evaluation["tags.pipeline.test_set"].startswith("a test set that is NOT the official")
    summary = mlflow.artifacts.load_text(f"runs:/{evaluation['run_id']}/summary.md")
    assert "- test set: a test set that is NOT the official MNIST one (100 images" in summary


@pytest.mark.slow
def test_the_official_test_set_is_called_so(cli, workdir):
    from conftest import require_shared_mnist

    from pipeline import data

    assert cli("download", "--source", require_shared_mnist()).exit_code == 0
    dataset = data.load_dataset(workdir / "data" / "mnist")
    assert dataset.test_set().startswith("the official MNIST test set (10000 images")
    assert not dataset.official  # the training part of the shared copy is a subset
    # Studies are named after it (the synthetic test set gives data-ARCH: see test_tune).
    assert data.data_name(workdir / "data" / "mnist") == "mnist"
    assert data.data_name(workdir / "nothing-cached") == "mnist"
