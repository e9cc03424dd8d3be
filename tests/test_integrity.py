"""Nothing lost, nothing false: the cache, secrets, the champion, the reaper, full disks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import runs
from test_download import one_line_error

TRAIN = ("train", "--arch", "mlp", "--epochs", "1", "--max-steps", "3", "--hidden-size", "8",
         "--no-progress")  # fmt: skip


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
def test_a_damaged_cache_is_refused_by_every_stage_and_refetched(cli, data_dir, source, damage):
    damage(data_dir)
    result = cli(*TRAIN)
    assert result.exit_code == 1
    message = one_line_error(result)
    assert "mnist.npz" in message and "pipeline download --force" in message, message
    assert len(runs()) == 0  # no train run on damaged data (the fixture logged no download)
    downloaded = cli("download", "--source", source)
    assert downloaded.exit_code == 0, downloaded.stderr
    assert "Verified" not in downloaded.stdout and "Cached" in downloaded.stdout
    assert cli(*TRAIN).exit_code == 0


def trained_runs(cli, count: int) -> list[tuple[float, str]]:
    """(test accuracy, run id) of `count` MLP runs of different quality, worst first."""
    scored = []
    for steps, rate in (("1", "0.0001"), ("3", "0.003"), ("9", "0.01"))[:count]:
        result = cli("train", "--arch", "mlp", "--epochs", "1", "--max-steps", steps,
                     "--learning-rate", rate, "--hidden-size", "8", "--batch-size", "16",
                     "--no-progress")  # fmt: skip
        assert result.exit_code == 0, result.stderr
        run_id = runs().iloc[0]["run_id"]
        assert cli("evaluate", "--run-id", run_id, "--no-register").exit_code == 0
        scored.append((float(runs().set_index("run_id").loc[run_id, "metrics.test_accuracy"]),
                       run_id))  # fmt: skip
    scored.sort()
    assert len({accuracy for accuracy, _ in scored}) == count, scored  # distinct qualities
    return scored


def champion_run() -> str:
    import mlflow

    client = mlflow.MlflowClient()
    return client.get_model_version_by_alias("mnist-mlp", "champion").run_id


def test_the_champion_ends_on_the_best_version_whatever_came_before(cli, data_dir):
    (_, worst), (_, middle), (_, best) = trained_runs(cli, 3)
    assert cli("evaluate", "--run-id", best).exit_code == 0
    assert cli("evaluate", "--run-id", worst).exit_code == 0
    assert champion_run() == best
    import mlflow  # a lost race (or a hand) left the alias on a worse version

    client = mlflow.MlflowClient()
    worst_version = client.search_model_versions(f"run_id = '{worst}'")[0].version
    client.set_registered_model_alias("mnist-mlp", "champion", worst_version)
    client.delete_model_version_tag("mnist-mlp", worst_version, "test_accuracy")  # and untagged
    result = cli("evaluate", "--run-id", middle)
    assert result.exit_code == 0, result.stderr
    assert champion_run() == best
    assert "does not beat champion" in result.stdout and "(untested)" in result.stdout


def test_concurrent_evaluates_leave_the_best_champion(cli, workdir, data_dir):
    import subprocess
    import sys

    from conftest import subprocess_env

    (_, worse), (_, better) = trained_runs(cli, 2)
    evaluates = [
        subprocess.Popen([sys.executable, "-m", "pipeline", "evaluate", "--run-id", run_id],
                         cwd=workdir, env=subprocess_env(workdir), text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for run_id in (better, worse)
    ]  # fmt: skip
    for process in evaluates:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    assert champion_run() == better


def running_run(tags: dict[str, str]) -> str:
    """A RUNNING run in the store with the given tags (as a live or dead stage leaves it)."""
    import os

    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    experiment = mlflow.set_experiment("mnist").experiment_id
    run = mlflow.MlflowClient().create_run(experiment, tags=tags)
    return run.info.run_id


def status(run_id: str) -> str:
    import mlflow

    return mlflow.get_run(run_id).info.status


def test_the_reaper_judges_each_run_by_its_own_heartbeat(cli, workdir, monkeypatch):
    import time

    now = time.time()
    slow_live = running_run({"pipeline.heartbeat": f"{now - 20:.0f}",
                             "pipeline.heartbeat_interval": "30"})  # fmt: skip
    dead = running_run({"pipeline.heartbeat": f"{now - 200:.0f}",
                        "pipeline.heartbeat_interval": "30"})  # fmt: skip
    garbled = running_run({"pipeline.heartbeat": "yesterday"})
    never = running_run({})
    monkeypatch.setenv("PIPELINE_RUN_HEARTBEAT_SECONDS", "2")  # this stage beats fast
    result = cli("reap")
    assert result.exit_code == 0, result.stderr
    assert status(slow_live) == "RUNNING" and status(dead) == "KILLED"
    assert status(garbled) == "RUNNING" and status(never) == "RUNNING"
    assert "1 stale run(s) marked KILLED" in result.stdout and dead in result.stdout
    assert f"left run {garbled} RUNNING" in result.stderr

    assert cli("reap", "--include-unbeating", "--older-than", "1h").exit_code == 0
    assert status(never) == "RUNNING"
    time.sleep(2)
    result = cli("reap", "--include-unbeating", "--older-than", "1s")
    assert result.exit_code == 0 and status(never) == "KILLED"
    import mlflow

    assert "never sent a heartbeat" in mlflow.get_run(never).data.tags["pipeline.failure_reason"]
    assert status(slow_live) == "RUNNING"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("--include-unbeating",), "--include-unbeating and --older-than DURATION go together"),
        (("--older-than", "2h"), "go together"),
        (("--include-unbeating", "--older-than", "soon"), "--older-than must be a duration"),
    ],
)
def test_reap_options_are_checked(cli, workdir, args, fragment):
    result = cli("reap", *args)
    assert result.exit_code == 1 and fragment in one_line_error(result)


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


def test_no_password_from_the_tracking_uri_is_printed(cli, workdir, data_dir, monkeypatch):
    from conftest import closed_port_url

    monkeypatch.setenv("MLFLOW_TRACKING_URI",
                       closed_port_url().replace("http://", f"http://u:{SECRET}@").rstrip("/"))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    for args in (TRAIN, ("reap",), ("report",), ("evaluate", "--run-id", "0" * 32)):
        result = cli(*args)
        assert result.exit_code == 1
        assert SECRET not in result.stdout + result.stderr, args
        assert "u:***@127.0.0.1" in one_line_error(result), args


def test_stages_started_at_once_on_a_fresh_store_leave_it_healthy(tmp_path):
    import subprocess
    import sys

    from conftest import subprocess_env

    for attempt in range(3):  # unserialised, 2 of 3 such starts broke the store for good
        work = tmp_path / f"fresh-{attempt}"
        work.mkdir()
        env = subprocess_env(work)  # sqlite:///<work>/mlflow.db, not created yet
        stages = [
            subprocess.Popen([sys.executable, "-m", "pipeline", "reap"], cwd=work, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(3)
        ]  # fmt: skip
        for stage in stages:
            _, stderr = stage.communicate(timeout=300)
            assert stage.returncode == 0, stderr
        again = subprocess.run([sys.executable, "-m", "pipeline", "reap"], cwd=work, env=env,
                               capture_output=True, text=True, timeout=300)  # fmt: skip
        assert again.returncode == 0 and "No stale runs." in again.stdout, again.stderr


def killed_run_with_checkpoint(workdir) -> str:
    """A train run ended by SIGTERM after at least one checkpoint, as a user leaves it."""
    import signal
    import subprocess
    import sys
    import time

    from conftest import subprocess_env, wait_for

    args = [sys.executable, "-m", "pipeline", "train", "--arch", "mlp", "--epochs", "40",
            "--batch-size", "8", "--hidden-size", "16", "--no-progress"]  # fmt: skip
    process = subprocess.Popen(args, cwd=workdir, env=subprocess_env(workdir),
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_for(lambda: list(workdir.glob("checkpoints/*/state.json")), 120, "a checkpoint")
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    run_id = runs().iloc[0]["run_id"]
    assert status(run_id) == "KILLED"
    return run_id


@pytest.mark.parametrize("damaged", ["state.json", "weights.npz"])
def test_a_damaged_checkpoint_is_one_line_and_the_run_stays_killed(cli, workdir, data_dir,
                                                                   damaged):  # fmt: skip
    run_id = killed_run_with_checkpoint(workdir)
    path = workdir / "checkpoints" / run_id / damaged
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    result = cli("train", "--resume", run_id, "--no-progress")
    assert result.exit_code == 1
    assert "the checkpoint" in one_line_error(result) and "damaged" in one_line_error(result)
    assert status(run_id) == "KILLED"


def test_a_run_resuming_in_one_process_cannot_be_resumed_by_another(workdir, data_dir):
    import subprocess
    import sys

    import mlflow
    from conftest import subprocess_env, wait_for

    run_id = killed_run_with_checkpoint(workdir)
    (workdir / "checkpoints" / run_id / ".weights.npz.x.part").write_bytes(b"left by SIGKILL")
    resume = [sys.executable, "-m", "pipeline", "train", "--resume", run_id, "--no-progress"]
    first = subprocess.Popen(resume, cwd=workdir, env=subprocess_env(workdir), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    wait_for(lambda: status(run_id) == "RUNNING", 120, "the first resume to start")
    second = subprocess.run(resume, cwd=workdir, env=subprocess_env(workdir), text=True,
                            capture_output=True, timeout=300)  # fmt: skip
    assert second.returncode == 1
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: --resume") and "another process" in last, second.stderr
    _, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    assert status(run_id) == "FINISHED"
    assert "pipeline.failure_reason" not in mlflow.get_run(run_id).data.tags
    assert not list((workdir / "checkpoints" / run_id).glob(".*.part"))


def mount_small_disk(folder, options: str = "size=1m"):
    """A 1 MB tmpfs at folder: a real disk that fills up. Needs root (CI runs as root)."""
    import os
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                             capture_output=True, text=True)  # fmt: skip
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

    result = cli("train", "--arch", "mlp", "--epochs", "1", "--max-steps", "2",
                 "--hidden-size", "512", "--no-progress")  # fmt: skip
    assert result.exit_code == 1
    message = one_line_error(result)
    assert "No space left on device" in message and str(small_disk) in message, message
    run = runs().iloc[0]
    assert run["status"] == "FAILED"
    assert "No space left" in run["tags.pipeline.failure_reason"]
    models = mlflow.search_logged_models(experiment_ids=[run["experiment_id"]],
                                         output_format="list")  # fmt: skip
    assert models and {model.status for model in models} == {"FAILED"}, models
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


def test_concurrent_downloads_into_one_folder_end_with_one_valid_cache(workdir, source):
    import subprocess
    import sys

    from conftest import subprocess_env

    from pipeline import data

    target = workdir / "shared-data"
    args = [sys.executable, "-m", "pipeline", "download", "--source", str(source),
            "--data-dir", str(target)]  # fmt: skip
    downloads = [subprocess.Popen(args, cwd=workdir, env=subprocess_env(workdir), text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(3)]  # fmt: skip
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


def test_sigterm_during_download_says_so_and_leaves_nothing(workdir, source):
    import http.server
    import signal
    import subprocess
    import sys
    import threading
    import time

    from conftest import subprocess_env

    class Stalling(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 -- the http.server API
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
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "download", "--data-dir", str(target), "--source",
             f"http://127.0.0.1:{server.server_address[1]}/"],
            cwd=workdir, env=subprocess_env(workdir), stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
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


def test_a_model_too_big_for_memory_is_one_line(cli, data_dir):
    result = cli("train", "--arch", "mlp", "--hidden-size", "200000", "--epochs", "1",
                 "--no-progress")  # fmt: skip
    assert result.exit_code == 1
    assert "not enough memory for this model" in one_line_error(result)
    assert runs().iloc[0]["status"] == "FAILED"


def test_repeated_ctrl_c_in_tune_is_one_line(cli, workdir, data_dir):
    import signal
    import subprocess
    import sys
    import time

    from conftest import subprocess_env, wait_for

    assert cli("init-stores", "--storage", f"sqlite:///{workdir / 'optuna.db'}").exit_code == 0
    tune = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "tune", "--arch", "mlp", "--n-trials", "3",
         "--epochs-range", "200", "300", "--hidden-size-range", "8", "16",
         "--storage", f"sqlite:///{workdir / 'optuna.db'}"],
        cwd=workdir, env=subprocess_env(workdir), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(lambda: len(runs()) and (runs()["tags.pipeline.stage"] == "trial").any(), 180,
             "a trial run")  # fmt: skip
    time.sleep(1)
    tune.send_signal(signal.SIGINT)
    time.sleep(0.1)
    tune.send_signal(signal.SIGINT)
    _, stderr = tune.communicate(timeout=120)
    assert tune.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("Error: interrupted by SIGINT"), stderr
    assert "RUNNING" not in set(runs()["status"])


def test_a_full_or_read_only_store_is_one_line(cli, workdir, data_dir, monkeypatch):
    import subprocess

    disk = workdir / "store"
    mount_small_disk(disk)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{disk / 'mlflow.db'}")
        assert cli("reap").exit_code == 0  # a healthy store (about 0.9 MB) on a 1 MB disk
        free = subprocess.run(["df", "-k", "--output=avail", str(disk)], capture_output=True,
                              text=True).stdout.split()[-1]  # fmt: skip
        (disk / "filler").write_bytes(b"x" * max(0, (int(free) - 4) * 1024))
        result = cli(*TRAIN)
        assert result.exit_code == 1
        assert "database or disk is full" in one_line_error(result)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    read_only = workdir / "read-only"
    mount_small_disk(read_only, "ro,size=1m")
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{read_only / 'mlflow.db'}")
        result = cli(*TRAIN)
        assert result.exit_code == 1
        message = one_line_error(result)
        assert str(read_only / "mlflow.db") in message and "unable to open database" in message
    finally:
        subprocess.run(["umount", "-l", str(read_only)], check=False)


def test_evaluate_names_the_test_set_it_used(cli, data_dir):
    import mlflow

    assert cli(*TRAIN).exit_code == 0
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


@pytest.mark.slow
def test_no_password_from_a_live_tracking_server_url_is_printed_or_stored(workdir, data_dir):
    import subprocess
    import sys

    import mlflow
    from conftest import free_port, start_server, stop_server, subprocess_env

    port = free_port()
    server = start_server(workdir, port)
    try:
        env = {**subprocess_env(workdir),
               "MLFLOW_TRACKING_URI": f"http://user:{SECRET}@127.0.0.1:{port}"}  # fmt: skip

        def pipeline(*args) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)],
                                  cwd=workdir, env=env, capture_output=True, text=True,
                                  timeout=600)  # fmt: skip

        trained = pipeline(*TRAIN)
        assert trained.returncode == 0, trained.stderr
        run_id = next(line.split()[-1] for line in trained.stdout.splitlines()
                      if line.strip().startswith("run "))  # fmt: skip
        outputs = [trained, pipeline("evaluate", "--run-id", run_id),
                   pipeline("report", "--output-dir", workdir / "out"),
                   pipeline("report", "--experiment", "nope")]  # fmt: skip
        for done in outputs:
            assert SECRET not in done.stdout + done.stderr, done.args
        assert "user:***@127.0.0.1" in trained.stdout
        mlflow.set_tracking_uri(f"http://127.0.0.1:{port}")
        frame = mlflow.search_runs(search_all_experiments=True)
        assert len(frame) >= 3 and SECRET not in frame.to_csv()
        assert SECRET not in (workdir / "out" / "report.md").read_text()
    finally:
        stop_server(server)


def test_a_run_beating_on_another_machine_cannot_be_resumed(cli, workdir, data_dir):
    import time

    import mlflow

    run_id = killed_run_with_checkpoint(workdir)
    client = mlflow.MlflowClient()
    client.update_run(run_id, status="RUNNING")  # as a live run elsewhere shows in the store
    client.set_tag(run_id, "pipeline.host", "another-machine")
    client.set_tag(run_id, "pipeline.heartbeat", f"{time.time():.0f}")
    result = cli("train", "--resume", run_id, "--no-progress")
    assert result.exit_code == 1
    assert "the run is alive" in one_line_error(result)
    assert status(run_id) == "RUNNING"


def test_after_the_first_stop_signal_repeats_are_ignored_until_the_process_ends():
    """A second Ctrl-C while a trial's run and then its study's run are being closed must not
    interrupt the closing (a run was left RUNNING that way)."""
    import signal

    from pipeline import interrupts

    saved = {number: signal.getsignal(number) for number in interrupts.SIGNALS}
    try:
        with interrupts.raising():  # the study's run
            with pytest.raises(interrupts.Interrupted):
                with interrupts.raising():  # the trial's run
                    signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)  # while the study's run closes: ignored
            signal.raise_signal(signal.SIGTERM)
        stop = interrupts.GracefulStop(lambda: None)
        for number in interrupts.SIGNALS:
            signal.signal(number, signal.default_int_handler)
        with stop.active():
            signal.raise_signal(signal.SIGTERM)
        assert stop.pending == signal.SIGTERM
        signal.raise_signal(signal.SIGINT)  # after a graceful stop too: ignored
    finally:
        for number, action in saved.items():
            signal.signal(number, action)


def test_a_signal_just_before_keras_starts_still_stops_training(data_dir):
    """fit() clears stop_training as it starts; a stop requested a moment earlier still counts."""
    import numpy as np

    from pipeline import interrupts, tracking, training
    from pipeline.backend import keras
    from pipeline.callbacks import StepMetrics
    from pipeline.config import train_config

    config = train_config("mlp", epochs=3, batch_size=32, hidden_size=8)
    model = training.new_model(config, 270)
    stop = interrupts.GracefulStop(lambda: setattr(model, "stop_training", True))
    stop.pending = 2  # the signal came while fit() was being set up

    class Sink(tracking.StepMetricSink):
        def _send(self, metrics) -> None:  # no store in this test
            pass

    batches = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(batch)
    )
    seen: list[int] = []
    images = np.random.default_rng(0).random((270, 28, 28), dtype=np.float32) * 255
    labels = np.arange(270) % 10
    model.fit(images, labels, batch_size=32, epochs=3, verbose=0,
              callbacks=[StepMetrics(Sink("run", 0, 32, 270, None), stop), batches])  # fmt: skip
    assert seen == [0]  # one batch, then it stopped (9 batches an epoch otherwise)
