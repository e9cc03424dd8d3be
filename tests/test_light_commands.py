"""Commands that do not train answer without importing TensorFlow or Keras, and still do their job.

Each command runs in a fresh interpreter that reports, at exit, which heavy modules it loaded.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import subprocess_env

PROBE = """
import atexit, sys
atexit.register(lambda: sys.stderr.write(
    "\\nLOADED " + " ".join(m for m in ("tensorflow", "keras") if m in sys.modules) + "\\n"))
from pipeline.cli.app import main
main(sys.argv[1:])
"""


def probe(workdir, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, args)],
        cwd=workdir,
        env=subprocess_env(workdir),
        capture_output=True,
        text=True,
        timeout=300,
    )
    loaded = done.stderr.rsplit("LOADED", 1)[-1].split()
    return done, set(loaded)


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, expected",
    [
        (("--version",), "0."),
        (("--help",), "init-stores"),
        (("download",), "Verified MNIST already in"),
        (("reap",), "No stale runs."),
        (("report", "--output-dir", "out"), "Wrote out/report.md"),
        (("init-stores", "--storage", "sqlite:///optuna.db"), "Ready: MLflow store"),
        (("ui", "--help"), "--port"),
    ],
)
def test_light_commands_do_their_job_without_tensorflow(workdir, data_dir, args, expected):
    done, loaded = probe(workdir, *args)
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout, done.stdout
    assert not loaded & {"tensorflow", "keras"}, (args, loaded)


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, fragment",
    [
        (("train", "--epochs", "0"), "--epochs must be a positive integer"),
        (("train", "--arch", "cnn"), "--arch must be one of"),
        (("train", "--resume", "abc", "--epochs", "2"), "drop --epochs"),
        (("train", "--data-dir", "nowhere"), "no MNIST data in nowhere"),
        (("evaluate",), "give exactly one of --run-id or --model-uri"),
        (("evaluate", "--run-id", "0" * 32), "no run 0000"),
        (("tune", "--pruner", "sometimes"), "--pruner must be one of"),
        (("tune", "--storage", "nosuchdb://x/y"), "cannot open --storage"),
        (("tune", "--learning-rate-range", "1", "0.1"), "--learning-rate-range needs"),
    ],
)
def test_option_and_precondition_errors_come_before_tensorflow(workdir, data_dir, args, fragment):
    done, loaded = probe(workdir, *args)
    assert done.returncode != 0
    assert fragment in done.stderr, done.stderr
    assert not loaded & {"tensorflow", "keras"}, (args, loaded)
