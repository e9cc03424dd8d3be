"""Shared fixtures: synthetic IDX files, a temporary tracking store, a CLI runner, HTTP mirrors."""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = Path(
    os.environ.get("MNIST_LOCAL_SOURCE", REPO.parent / "shared" / "data" / "mnist")
).resolve()
FILE_NAMES = {
    "train-images": "train-images-idx3-ubyte.gz",
    "train-labels": "train-labels-idx1-ubyte.gz",
    "test-images": "t10k-images-idx3-ubyte.gz",
    "test-labels": "t10k-labels-idx1-ubyte.gz",
}


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """Raw (uncompressed) IDX bytes for a uint8 array of images (n, 28, 28) or labels (n,)."""
    if magic is None:
        magic = 0x803 if array.ndim == 3 else 0x801
    header = struct.pack(">II", magic, array.shape[0])
    if array.ndim == 3:
        header += struct.pack(">II", *array.shape[1:])
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, magic: int | None = None) -> Path:
    path.write_bytes(gzip.compress(idx_bytes(array, magic)))
    return path


def synthetic_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable fake digits: each class lights its own 7x7 block, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(count, 28, 28))
    for index, label in enumerate(labels):
        row, col = divmod(int(label), 4)
        images[index, row * 7 : row * 7 + 7, col * 7 : col * 7 + 7] += 180
    return images.clip(0, 255).astype(np.uint8), labels.astype(np.uint8)


def write_mnist_folder(folder: Path, train: int = 300, test: int = 100) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train = synthetic_digits(train, 1)
    x_test, y_test = synthetic_digits(test, 2)
    arrays = {
        "train-images": x_train,
        "train-labels": y_train,
        "test-images": x_test,
        "test-labels": y_test,
    }
    for key, array in arrays.items():
        write_idx(folder / FILE_NAMES[key], array)
    return folder


def corrupt(folder: Path, key: str, how: str) -> None:
    path = folder / FILE_NAMES[key]
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:-40])
    elif how == "not gzip":
        path.write_bytes(b"this is not gzip at all")
    elif how == "wrong magic":
        images, _ = synthetic_digits(300, 1)
        write_idx(path, images, magic=0x801)
    elif how == "short payload":
        path.write_bytes(gzip.compress(idx_bytes(synthetic_digits(300, 1)[0])[:-5]))
    elif how == "count mismatch":
        write_idx(path, synthetic_digits(299, 1)[1])
    elif how == "bad label":
        labels = synthetic_digits(300, 1)[1].copy()
        labels[7] = 12
        write_idx(path, labels)
    elif how == "wrong size":
        write_idx(path, np.zeros((100, 20, 20), dtype=np.uint8))


def assert_nothing_cached(data_dir: Path) -> None:
    """No file a later stage could accept, and no leftover temporary file."""
    leftovers = [p for p in data_dir.rglob("*") if p.is_file()] if data_dir.exists() else []
    assert leftovers == [], leftovers


def one_line_error(result) -> str:
    """The one "Error:" line, last on stderr (progress bars may come before it)."""
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


def assert_failed_cleanly(result, *fragments: str, data_dir: Path) -> None:
    assert result.exit_code != 0
    message = one_line_error(result)
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in message, message
    assert_nothing_cached(data_dir)
    assert len(runs()) == 0


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A folder holding four small synthetic MNIST-format files."""
    return write_mnist_folder(tmp_path / "source")


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its schema and no experiment yet.

    MLflow takes about 3 s to create a store's schema (its migrations), and copying this file
    takes milliseconds. Without experiments, the first stage to open a copy creates MLflow's
    Default experiment there, with artifacts under that working directory, as in a new store.
    """
    import sqlite3

    import mlflow

    path = tmp_path_factory.mktemp("store-template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    with contextlib.closing(sqlite3.connect(path)) as database, database:
        database.execute("DELETE FROM experiments")
    return path


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store: Path) -> Path:
    """A fresh working directory with its own SQLite tracking store (a copy of an empty one)."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copyfile(empty_store, work / "mlflow.db")
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)  # mlflow.set_experiment sets it
    return work


@dataclass(frozen=True)
class Tiny:
    """The smallest settings that still show a feature: one home for every test's sizes."""

    # Options for a small, fast model on the synthetic data (add --arch, --epochs).
    model: tuple[str, ...] = tuple("--batch-size 32 --hidden-size 16 --no-progress".split())
    # A whole train command of a few seconds.
    train: tuple[str, ...] = tuple(
        "train --arch mlp --epochs 1 --max-steps 3 --hidden-size 8 --no-progress".split()
    )
    # Options for a small study (add --arch, --n-trials, ...).
    tune: tuple[str, ...] = tuple("--hidden-size-range 8 16 --validation-fraction 0.2".split())


@pytest.fixture
def tiny() -> Tiny:
    """The tiny settings (see Tiny)."""
    return Tiny()


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture):
    """Run the console entry point in-process and capture its exit code and output."""
    from pipeline.cli.app import main

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        try:
            main([str(arg) for arg in args])
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return invoke


@pytest.fixture
def http_folder():
    """Serve folders over HTTP on 127.0.0.1; yields a function folder -> base URL."""
    servers = []

    def serve(folder: Path) -> str:
        handler = functools.partial(QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def closed_port_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/"


def runs(experiment: str = "mnist"):
    """All runs of the experiment in the current tracking store, as a DataFrame."""
    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return mlflow.search_runs(experiment_names=[experiment])


def children(parent_id: str):
    """The runs whose parent is parent_id."""
    frame = runs()
    return frame[frame.get("tags.mlflow.parentRunId") == parent_id]


def run_status(run_id: str) -> str:
    """A run's status in the current tracking store (as runs() reads it)."""
    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return mlflow.get_run(run_id).info.status


def require_shared_mnist() -> Path:
    """The real-MNIST folder; when it is absent, a failure saying how to point at it, or a skip
    when told to skip (SKIP_REAL_DATA set)."""
    if (SHARED_MNIST / FILE_NAMES["train-images"]).is_file():
        return SHARED_MNIST
    if os.environ.get("SKIP_REAL_DATA"):
        pytest.skip(f"real MNIST files not found at {SHARED_MNIST} (SKIP_REAL_DATA)")
    pytest.fail(
        f"no real MNIST files at {SHARED_MNIST}: set MNIST_LOCAL_SOURCE to the folder of the "
        "four IDX files, or SKIP_REAL_DATA=1 to skip the tests that need them"
    )


@pytest.fixture
def data_dir(workdir: Path, source: Path) -> Path:
    """The synthetic set imported into the workdir's data/mnist, as the download stage does."""
    from pipeline import fetch
    from pipeline.config import DataConfig

    target = workdir / "data" / "mnist"
    fetch.download(DataConfig(data_dir=target, source=str(source)))
    return target


def metric_steps(run_id: str, key: str) -> list[tuple[int, float]]:
    import mlflow

    return sorted((m.step, m.value) for m in mlflow.MlflowClient().get_metric_history(run_id, key))


def subprocess_env(workdir: Path) -> dict[str, str]:
    """The workdir's store for a child process, with the virtualenv's bin first on PATH.

    (`mlflow run --env-manager local` runs `python`, and `mlflow models serve` runs `uvicorn`,
    by name, as they would in an activated virtualenv.)
    """
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for leftover in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(leftover, None)
    return env


PIPELINE = [sys.executable, "-m", "pipeline"]  # the CLI as a child process


def start(workdir: Path, *command: object, env: dict[str, str] | None = None) -> subprocess.Popen:
    """command (PIPELINE + options, say) started in workdir on its store: text output, stdout
    and stderr piped."""
    return subprocess.Popen(
        [str(word) for word in command],
        cwd=workdir,
        env=env or subprocess_env(workdir),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def run_to_end(
    workdir: Path, *command: object, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """command run to its end in workdir on its store, its output captured as text."""
    return subprocess.run(
        [str(word) for word in command],
        cwd=workdir,
        env=env or subprocess_env(workdir),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


POSTGRES_ADMIN = os.environ.get("PIPELINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture
def postgres_database():
    """A fresh PostgreSQL database URL (dropped afterwards); fails in CI when unreachable."""
    import uuid

    try:
        import psycopg

        admin = psycopg.connect(f"{POSTGRES_ADMIN}/postgres", connect_timeout=5, autocommit=True)
    except Exception as error:
        if os.environ.get("CI") or os.environ.get("PIPELINE_REQUIRE_POSTGRES"):
            pytest.fail(
                f"PostgreSQL is required here but unreachable at {POSTGRES_ADMIN}: {error}"
            )
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_ADMIN}")
    names = []

    def create() -> str:
        name = f"pipeline_test_{uuid.uuid4().hex[:12]}"
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
        names.append(name)
        return f"{POSTGRES_ADMIN}/{name}"

    yield create
    with admin.cursor() as cursor:
        for name in names:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


def add_hopeless_baseline(storage: str, study_name: str) -> None:
    """Add to a study (made with ranges that exclude the preset) a complete preset trial whose
    model got every validation image wrong: a baseline any learning trial beats beyond noise, so
    that --retrain-best has a winner to retrain (a real preset is too good for a tiny study)."""
    import numpy as np
    import optuna

    from pipeline import paired
    from pipeline.tracking import names

    study = optuna.load_study(study_name=study_name, storage=storage)
    done = next(t for t in study.trials if names.VAL_CORRECT_ATTR in t.system_attrs)
    images = len(paired.unpack(done.system_attrs[names.VAL_CORRECT_ATTR]))
    study.add_trial(
        optuna.trial.create_trial(
            params={"learning_rate": 1e-7, "hidden_size": 8},
            distributions={
                "learning_rate": optuna.distributions.FloatDistribution(1e-8, 1.0, log=True),
                "hidden_size": optuna.distributions.IntDistribution(1, 1024, log=True),
            },
            value=0.0,
            user_attrs={names.PRESET: "default"},
            system_attrs={names.VAL_CORRECT_ATTR: paired.pack(np.zeros(images, dtype=bool))},
        )
    )


def wait_for(condition, seconds: float, what: str):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(workdir, port: int, backend: str | None = None) -> subprocess.Popen:
    """`mlflow server` on 127.0.0.1:port (its own process group), once it answers /health;
    without MLflow's job runner, as `pipeline ui` starts it."""
    from pipeline.cli.ui_server import JOB_EXECUTION

    backend = backend or f"sqlite:///{workdir / 'server.db'}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            backend,
            "--artifacts-destination",
            str(workdir / "served-artifacts"),
        ],
        cwd=workdir,
        env={**subprocess_env(workdir), JOB_EXECUTION: "false"},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def healthy():
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status
        except OSError:
            return None

    wait_for(healthy, 120, "mlflow server")
    return server


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=30)
