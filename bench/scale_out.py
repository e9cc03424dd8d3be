"""Scale-out, measured: many `pipeline tune` workers on one study against `mlflow server` on
PostgreSQL, all on 127.0.0.1.

    python bench/scale_out.py [--workers 4] [--trials 40] [--epochs-range 1 2]
        [--postgres postgresql://postgres@127.0.0.1:5432]

In two fresh PostgreSQL databases (dropped afterwards), MLflow's store (behind an `mlflow
server`, one worker, artifacts served from a temporary folder) and Optuna's storage,
--workers `pipeline tune` processes run --trials MLP trials of one study in all. Prints:
- whether every trial is accounted for: Optuna's trials (finished, unique numbers) against the
  MLflow trial runs (one per trial, each a child of the study's run, none RUNNING);
- the CPU seconds of the MLflow server and of PostgreSQL (its live processes and the ones that
  ended, counted through the postmaster's children times), per trial;
- the latency of a probe request to the server (a one-run search_runs, every 2 s) while the first
  10 trials finished and while the last 10 did;
- an extrapolation to 32 workers: the server's and PostgreSQL's CPU share at the measured cost
  per trial and 32 workers' trial rate (each trial as long as here, one core each).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import mlflow
import optuna
import psutil
import psycopg
from common import PIPELINE, children_cpu, free_port  # bench/, beside this script

REPO = Path(__file__).resolve().parents[1]


def tree_cpu(root: psutil.Process) -> float:
    """CPU seconds of root, its live descendants and the children it (or they) reaped."""
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def postmaster() -> psutil.Process:
    candidates = [p for p in psutil.process_iter(["name", "ppid"]) if p.info["name"] == "postgres"]
    return next(p for p in candidates if p.info["ppid"] not in {c.pid for c in candidates})


def start_server(workdir: Path, backend: str, port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
        + ["--workers", "1", "--backend-store-uri", backend]
        + ["--artifacts-destination", str(workdir / "artifacts")],
        cwd=workdir,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return server
        except OSError:
            time.sleep(1)
    raise SystemExit("mlflow server did not answer")


class Probe(threading.Thread):
    """Times a small request to the server every 2 s: (time, seconds)."""

    def __init__(self, uri: str) -> None:
        super().__init__(daemon=True)
        self.client = mlflow.MlflowClient(uri)
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        experiment = None
        while not self.stop.wait(2):
            started = time.perf_counter()
            try:
                experiment = experiment or self.client.get_experiment_by_name("mnist")
                if experiment is not None:
                    self.client.search_runs([experiment.experiment_id], max_results=1)
            except Exception:
                continue
            self.samples.append((time.time(), time.perf_counter() - started))


def latency(samples, start: float, end: float) -> str:
    window = [seconds for at, seconds in samples if start <= at <= end]
    if not window:
        return "no sample"
    return f"median {1000 * statistics.median(window):.0f} ms over {len(window)} probes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs-range", nargs=2, default=["1", "2"])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    options = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Two databases, as the README's scale-out has them: MLflow's and Optuna's schemas each keep
    # an alembic_version table, so they cannot share one.
    name = f"bench_scale_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(f"{options.postgres}/postgres", autocommit=True)
    admin.execute(f"CREATE DATABASE {name}_mlflow")
    admin.execute(f"CREATE DATABASE {name}_optuna")
    server_url = options.postgres.replace("postgresql://", "postgresql+psycopg://")
    mlflow_database, database = f"{server_url}/{name}_mlflow", f"{server_url}/{name}_optuna"
    server = None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            workdir = Path(tmp)
            port = free_port()
            uri = f"http://127.0.0.1:{port}"
            server = start_server(workdir, mlflow_database, port)
            env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
            env.pop("MLFLOW_RUN_ID", None)
            for command in (
                ["download", "--source", options.source],
                ["init-stores", "--storage", database],
            ):
                subprocess.run([*PIPELINE, *command], cwd=workdir, env=env, check=True)
            share = -(-options.trials // options.workers)
            args = ["tune", "--arch", "mlp", "--n-trials", str(share), "--storage", database]
            args += ["--study-name", "scale", "--epochs-range", *options.epochs_range]
            server_process, pg = psutil.Process(server.pid), postmaster()
            server_cpu, pg_cpu = tree_cpu(server_process), tree_cpu(pg)
            probe = Probe(uri)
            probe.start()
            started, workers_cpu = time.perf_counter(), children_cpu()
            workers = [
                subprocess.Popen(
                    [*PIPELINE, *args], cwd=workdir, env=env, stdout=subprocess.DEVNULL
                )
                for _ in range(options.workers)
            ]
            codes = [worker.wait() for worker in workers]
            wall, workers_cpu = time.perf_counter() - started, children_cpu() - workers_cpu
            probe.stop.set()
            server_cpu = tree_cpu(server_process) - server_cpu
            pg_cpu = tree_cpu(pg) - pg_cpu
            study = optuna.load_study(study_name="scale", storage=database)
            done = sorted(
                (t for t in study.trials if t.datetime_complete),
                key=lambda t: t.datetime_complete,
            )
            client = mlflow.MlflowClient(uri)
            parent = study.user_attrs["mlflow_parent_run_id"]
            experiment = client.get_run(parent).info.experiment_id
            runs = client.search_runs([experiment], "tags.`pipeline.stage` = 'trial'")
            linked = {t.user_attrs.get("mlflow_run_id") for t in study.trials}
            print(
                f"{options.workers} workers, exit codes {codes}: {len(study.trials)} Optuna "
                f"trials ({len({t.number for t in study.trials})} unique numbers, states "
                f"{sorted({t.state.name for t in study.trials})}); {len(runs)} MLflow trial runs, "
                f"{sum(r.data.tags.get('mlflow.parentRunId') == parent for r in runs)} in the "
                f"study's run, {len({r.info.run_id for r in runs} & linked)} linked both ways, "
                f"{sum(r.info.status == 'RUNNING' for r in runs)} RUNNING",
                flush=True,
            )
            trials = len(done)
            print(
                f"wall {wall:.0f} s ({3600 * trials / wall:.0f} trials/h); mlflow server "
                f"{server_cpu:.1f} CPU-s ({server_cpu / trials:.2f} per trial), PostgreSQL "
                f"{pg_cpu:.1f} CPU-s ({pg_cpu / trials:.2f} per trial)",
                flush=True,
            )
            first = (done[0].datetime_start.timestamp(), done[9].datetime_complete.timestamp())
            last = (done[-10].datetime_start.timestamp(), done[-1].datetime_complete.timestamp())
            print(
                f"probe latency: first 10 trials {latency(probe.samples, *first)}; last 10 "
                f"{latency(probe.samples, *last)}",
                flush=True,
            )
            seconds_per_trial = workers_cpu / trials  # a trial's length on a core of its own
            rate = 32 / seconds_per_trial  # trials per second with 32 workers
            print(
                f"32 workers (one core each, {seconds_per_trial:.0f} CPU-s per trial as here): "
                f"{3600 * rate:.0f} trials/h; the server needs {rate * server_cpu / trials:.2f} "
                f"cores and PostgreSQL {rate * pg_cpu / trials:.2f} at this cost per trial",
                flush=True,
            )
    finally:
        if server is not None:
            os.killpg(server.pid, 15)
            server.wait()
        for suffix in ("mlflow", "optuna"):
            admin.execute(f"DROP DATABASE IF EXISTS {name}_{suffix} WITH (FORCE)")
        admin.close()


if __name__ == "__main__":
    main()
