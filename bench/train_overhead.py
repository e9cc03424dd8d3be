"""Tracking overhead of `pipeline train`: plain Keras vs the pipeline on SQLite and a server.

    python bench/train_overhead.py [--source ../shared/data/mnist] [--arch mlp --arch lstm]
                                   [--max-steps N]

Everything runs in one invocation on the same data and machine: the same seed-preset model is
fitted with plain `model.fit` (no tracking, no callbacks), then by `pipeline train` logging every
step to the default SQLite store, then to an `mlflow server` started on 127.0.0.1. Throughput is
training samples per second of the fit loop (validation included on both sides); the ratio is
pipeline time per sample divided by plain Keras time per sample (1.03 = 3 % overhead).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIPELINE = [sys.executable, "-m", "pipeline"]


def plain_keras(arch: str, data_dir: Path, max_steps: int | None) -> float:
    """Samples per second of a bare model.fit on the seed preset (run in a child process)."""
    code = f"""
import math, time, numpy as np
from pipeline import data, training
from pipeline.config import train_config
from pipeline.backend import keras
config = train_config({arch!r}, "seed", max_steps={max_steps!r})
splits = data.split_train_validation(data.load_dataset({str(data_dir)!r}),
                                     config.validation_fraction, config.seed)
steps = math.ceil(len(splits.y_train) / config.batch_size)
epochs = math.ceil(config.max_steps / steps) if config.max_steps else config.epochs
keras.utils.set_random_seed(config.seed)
model = training.new_model(config, len(splits.y_train))
x, y = splits.x_train.astype(np.float32), splits.y_train
val = (splits.x_val.astype(np.float32), splits.y_val)
started = time.perf_counter()
model.fit(x, y, batch_size=config.batch_size, epochs=epochs, validation_data=val, verbose=0)
seconds = time.perf_counter() - started
print("RESULT", len(y) * epochs / seconds)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    return float(re.search(r"RESULT (\S+)", out).group(1))


def pipeline_train(arch: str, workdir: Path, env: dict, max_steps: int | None) -> float:
    """Samples per second that `pipeline train` reports for its fit loop."""
    args = [*PIPELINE, "train", "--arch", arch, "--preset", "seed", "--no-progress"]
    args += ["--data-dir", str(workdir / "data")]
    if max_steps:
        args += ["--max-steps", str(max_steps)]
    out = subprocess.run(args, capture_output=True, text=True, cwd=workdir, env=env, check=False)
    if out.returncode:
        raise SystemExit(f"pipeline train failed:\n{out.stderr[-2000:]}")
    return float(re.search(r"\(([\d,]+) samples/s\)", out.stdout).group(1).replace(",", ""))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{workdir / 'server.db'}",
            "--artifacts-destination", str(workdir / "server-artifacts"),
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("mlflow server did not start within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--arch", action="append", choices=["mlp", "lstm"])
    parser.add_argument("--max-steps", type=int, default=None, help="shorten the LSTM preset")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (median)")
    options = parser.parse_args()
    arches = options.arch or ["mlp", "lstm"]
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
        env.pop("MLFLOW_RUN_ID", None)
        subprocess.run(
            [*PIPELINE, "download", "--source", options.source, "--data-dir", "data"],
            cwd=workdir, env=env, check=True, capture_output=True,
        )  # fmt: skip
        server, url = start_server(workdir)
        rates = {arch: ([], [], []) for arch in arches}
        try:
            # Rounds interleave the three variants, so drifting machine load hits all alike.
            for round_number in range(options.repeats):
                for arch in arches:
                    steps = options.max_steps if arch == "lstm" else None
                    keras_rates, sqlite_rates, server_rates = rates[arch]
                    keras_rates.append(plain_keras(arch, workdir / "data", steps))
                    sqlite_rates.append(pipeline_train(arch, workdir, env, steps))
                    server_env = {**env, "MLFLOW_TRACKING_URI": url}
                    server_rates.append(pipeline_train(arch, workdir, server_env, steps))
                    print(
                        f"round {round_number + 1} {arch}: keras {keras_rates[-1]:,.0f}  "
                        f"sqlite {sqlite_rates[-1]:,.0f}  server {server_rates[-1]:,.0f}",
                        flush=True,
                    )
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"{'arch':<6}{'plain keras':>14}{'sqlite':>12}{'ratio':>8}{'server':>12}{'ratio':>8}")
    print(f"(median of {options.repeats} interleaved rounds, samples/s of the fit loop; "
          "ratio = pipeline time / plain Keras time)")  # fmt: skip
    for arch, samples in rates.items():
        keras_rate, sqlite_rate, server_rate = (statistics.median(values) for values in samples)
        print(
            f"{arch:<6}{keras_rate:>14,.0f}{sqlite_rate:>12,.0f}{keras_rate / sqlite_rate:>8.3f}"
            f"{server_rate:>12,.0f}{keras_rate / server_rate:>8.3f}"
        )


if __name__ == "__main__":
    main()
