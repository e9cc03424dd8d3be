"""Tracking overhead of `pipeline train` against plain Keras and MLflow's own Keras callback.

    python bench/train_overhead.py [--source ../shared/data/mnist] [--arch mlp --arch lstm]
                                   [--epochs N] [--repeats 3] [--server-jobs false|true]

Everything runs in one invocation on the same data and machine, for a SQLite store and an
`mlflow server` started on 127.0.0.1: the same seed-preset model is fitted with
- plain `model.fit` (no tracking, no callbacks);
- the peer: `model.fit` inside an MLflow run with `mlflow.keras.MlflowCallback(
  log_every_epoch=False, log_every_n_steps=1)`, MLflow's own per-step logging, as is and with
  MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS set (batched asynchronous logging);
- `pipeline train`, logging every step.
Throughput is training samples per second of the fit loop (validation included everywhere); a
ratio is the variant's time per sample divided by plain Keras' (1.03 = 3 % overhead). Rounds
interleave the variants and the table shows medians; the last column is the pipeline's overhead
as a share of the (unbuffered) peer's.

The server is started the way `pipeline ui` starts it (MLflow's job runner off; --server-jobs true
turns it on) and measured only once its start-up work is done. The CPU seconds its process tree
spends during each fit are printed too: on a 2-core machine they are taken from the fit.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import Workspace, free_port  # bench/, beside this script

from pipeline.tracking import names

REPO = Path(__file__).resolve().parents[1]
JOB_EXECUTION = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


def keras_fit(
    arch: str, data_dir: Path, epochs: int | None, env: dict | None = None, peer: bool = False
) -> float:
    """Samples per second of a bare model.fit on the seed preset (run in a child process); with
    peer, inside an MLflow run with MLflow's Keras callback logging every step."""
    code = f"""
import contextlib, math, time, numpy as np
from pipeline import data, fitting
from pipeline.config import train_config
from pipeline.keras_runtime import keras
config = train_config({arch!r}, "seed", epochs={epochs!r})
splits = data.split_train_validation(data.load_dataset({str(data_dir)!r}),
                                     config.validation_fraction, config.seed)
steps = math.ceil(len(splits.y_train) / config.batch_size)
epochs = math.ceil(config.max_steps / steps) if config.max_steps else config.epochs
keras.utils.set_random_seed(config.seed)
model = fitting.new_model(config, len(splits.y_train))
x, y = splits.x_train.astype(np.float32), splits.y_train
val = (splits.x_val.astype(np.float32), splits.y_val)
callbacks, context = [], contextlib.nullcontext()
if {peer!r}:
    import mlflow, mlflow.keras
    mlflow.set_experiment("peer")
    context = mlflow.start_run()
    callbacks = [mlflow.keras.MlflowCallback(log_every_epoch=False, log_every_n_steps=1)]
with context:
    started = time.perf_counter()
    model.fit(x, y, batch_size=config.batch_size, epochs=epochs, validation_data=val, verbose=0,
              callbacks=callbacks)
    seconds = time.perf_counter() - started
print("RESULT", len(y) * epochs / seconds)
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env or os.environ,
    )
    if out.returncode:
        raise SystemExit(f"keras fit failed:\n{out.stderr[-2000:]}")
    return float(re.search(r"RESULT (\S+)", out.stdout).group(1))


def pipeline_train(arch: str, work: Workspace, epochs: int | None) -> float:
    """Samples per second of `pipeline train`'s fit loop: the median of its epochs', as the
    train run logs them (samples_per_second) in the store work points at."""
    args = ["train", "--arch", arch, "--preset", "seed", "--no-progress"]
    args += ["--data-dir", str(work.folder / "data")]
    if epochs:  # replaces the seed preset's step budget, as in train_config
        args += ["--epochs", str(epochs)]
    work.pipeline(*args)
    return statistics.median(work.metric_values(work.newest("train"), names.SAMPLES_PER_SECOND))


def start_server(workdir: Path, job_execution: str) -> tuple[subprocess.Popen, str]:
    """`mlflow server` on 127.0.0.1 (its own process group), once it answers and its start-up
    work is done (the process tree's CPU time stops growing)."""
    port = free_port()
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
            f"sqlite:///{workdir / 'server.db'}",
            "--artifacts-destination",
            str(workdir / "server-artifacts"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=workdir,
        env={**os.environ, JOB_EXECUTION: job_execution},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        os.killpg(server.pid, signal.SIGKILL)
        raise SystemExit("mlflow server did not start within 120 s")
    settled = server_cpu(server)
    while time.time() < deadline + 120:  # idle: under 0.25 s of CPU in 5 s
        time.sleep(5)
        settled, before = server_cpu(server), settled
        if settled - before < 0.25:
            return server, url
    os.killpg(server.pid, signal.SIGKILL)
    raise SystemExit("mlflow server did not settle within 240 s")


def server_cpu(server: subprocess.Popen) -> float:
    """CPU seconds used so far by the server and every worker it started."""
    import psutil

    total = 0.0
    parent = psutil.Process(server.pid)
    for process in [parent, *parent.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.Error:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--arch", action="append", choices=["mlp", "lstm"])
    parser.add_argument("--epochs", type=int, default=None, help="shorten the seed presets")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument(
        "--server-jobs",
        choices=["false", "true"],
        default="false",
        help="the server's MLFLOW_SERVER_ENABLE_JOB_EXECUTION (as pipeline ui: false)",
    )
    options = parser.parse_args()
    arches = options.arch or ["mlp", "lstm"]
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
        env.pop("MLFLOW_RUN_ID", None)
        Workspace(workdir, env).pipeline(
            "download", "--source", options.source, "--data-dir", "data"
        )
        data = workdir / "data"
        server, url = start_server(workdir, options.server_jobs)
        stores = {"sqlite": env, "server": {**env, "MLFLOW_TRACKING_URI": url}}
        variants = ("keras", "peer", "peer buffered", "pipeline")
        rates = {(arch, store, v): [] for arch in arches for store in stores for v in variants}
        cpu = {(arch, v): [] for arch in arches for v in variants[1:]}  # the server's CPU s

        def measure(arch: str, store: str, variant: str, fit, *args, **kwargs) -> None:
            before = server_cpu(server)
            rates[arch, store, variant].append(fit(*args, **kwargs))
            if store == "server":
                cpu[arch, variant].append(server_cpu(server) - before)

        try:
            # Rounds interleave the variants, so drifting machine load hits all alike.
            for round_number in range(options.repeats):
                for arch in arches:
                    epochs = options.epochs
                    measure(arch, "sqlite", "keras", keras_fit, arch, data, epochs)
                    for store, store_env in stores.items():
                        buffered = {**store_env, "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS": "5"}
                        measure(
                            arch,
                            store,
                            "peer",
                            keras_fit,
                            arch,
                            data,
                            epochs,
                            store_env,
                            peer=True,
                        )
                        measure(
                            arch,
                            store,
                            "peer buffered",
                            keras_fit,
                            arch,
                            data,
                            epochs,
                            buffered,
                            peer=True,
                        )
                        measure(
                            arch,
                            store,
                            "pipeline",
                            pipeline_train,
                            arch,
                            Workspace(workdir, store_env),
                            epochs,
                        )
                    print(
                        f"round {round_number + 1} {arch}: "
                        + "  ".join(
                            f"{store}/{variant} {values[-1]:,.0f}"
                            for (a, store, variant), values in rates.items()
                            if a == arch and values
                        )
                        + "  server CPU s: "
                        + "  ".join(
                            f"{variant} {values[-1]:.1f}"
                            for (a, variant), values in cpu.items()
                            if a == arch and values
                        ),
                        flush=True,
                    )
        finally:
            os.killpg(server.pid, signal.SIGTERM)  # the server and every worker it started
            server.wait(timeout=30)
    print(
        f"\n(median of {options.repeats} interleaved rounds, samples/s of the fit loop; "
        "ratio = variant time / plain Keras time; server started with "
        f"MLFLOW_SERVER_ENABLE_JOB_EXECUTION={options.server_jobs})"
    )
    print(
        f"{'arch':<6}{'store':<8}{'keras':>9}{'peer':>9}{'ratio':>7}{'buffered':>10}"
        f"{'ratio':>7}{'pipeline':>10}{'ratio':>7}{'share of peer overhead':>24}"
    )
    for arch in arches:
        keras_rate = statistics.median(rates[arch, "sqlite", "keras"])
        for store in stores:
            peer, buffered, ours = (statistics.median(rates[arch, store, v]) for v in variants[1:])
            ratios = [keras_rate / rate for rate in (peer, buffered, ours)]
            share = (ratios[2] - 1) / (ratios[0] - 1) if ratios[0] > 1 else float("nan")
            print(
                f"{arch:<6}{store:<8}{keras_rate:>9,.0f}{peer:>9,.0f}{ratios[0]:>7.3f}"
                f"{buffered:>10,.0f}{ratios[1]:>7.3f}{ours:>10,.0f}{ratios[2]:>7.3f}"
                f"{share:>24.2f}"
            )
    print(
        "\nthe server's CPU seconds during each fit (median): "
        + "  ".join(
            f"{arch}/{variant} {statistics.median(values):.1f}"
            for (arch, variant), values in cpu.items()
        )
    )


if __name__ == "__main__":
    main()
