"""Do commands cost more as the store fills with trial runs?

    python bench/store_scale.py [--sizes 0 2000 20000] [--keep DIR] [--repeats 3]

A base store (data from --source): `pipeline main --arch mlp` once (download, train, evaluate,
report). For each size N, a copy of it gets N FINISHED trial runs under one study's tune run,
through MLflow's client, like a real study's (tags, params, a 20-epoch validation curve, a
per-step loss of 160 points). Stores are kept in --keep (default: a temporary folder), so that
the 20,000-run store is built once. Then, per command, the median CPU seconds and peak RSS of
--repeats runs, and their ratio to N = 0:

- report: `pipeline report`
- reap: `pipeline reap`
- main: `pipeline main --arch mlp` with every step cached (it reuses download, train, evaluate)
- evaluate: `pipeline evaluate --run-id RUN --no-register` of the evaluated train run
- floor: MLflow's own floor: `import mlflow`, open the store, one search_runs of one run

Timings are ratios measured in one run on one machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import PIPELINE  # bench/, beside this script

REPO = Path(__file__).resolve().parents[1]
MEASURE = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)
"""
FLOOR = """
import mlflow
mlflow.search_runs(experiment_names=["mnist"], max_results=1)
"""


def measure(command: list[str], workdir: Path, env: dict) -> tuple[float, float]:
    """(CPU seconds, peak RSS in MB) of one run of command, in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *command],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        check=True,
    ).stdout.split()
    return float(out[0]), float(out[1])


def base_store(folder: Path, source: str) -> str:
    """A store after one `pipeline main --arch mlp`; returns its evaluated train run's id."""
    env = environment(folder)
    if not (folder / "mlflow.db").exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [*PIPELINE, "main", "--arch", "mlp", "--source", source],
            cwd=folder,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mnist")
    (train,) = client.search_runs(
        [experiment.experiment_id], "tags.`pipeline.stage` = 'train'", max_results=1
    )
    return train.info.run_id


def fill(folder: Path, count: int) -> None:
    """count trial runs of one study, as `pipeline tune` leaves them."""
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    from pipeline.tracking import names

    client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mnist").experiment_id
    parent = client.create_run(experiment, run_name="tune-mnist-mlp")
    client.set_tag(parent.info.run_id, names.STAGE, "tune")
    now = int(time.time() * 1000)
    started = time.time()
    for number in range(count):
        run = client.create_run(experiment, run_name=f"mnist-mlp-trial-{number}")
        metrics = [Metric(names.VAL_ACCURACY, 0.95, now, 139 * e) for e in range(1, 21)]
        metrics += [Metric(names.BATCH_LOSS, 0.3, now, step) for step in range(160)]
        params = {
            "arch": "mlp",
            "preset": "default",
            "learning_rate": "0.0012",
            "hidden_size": "300",
            "epochs": "20",
            "batch_size": "128",
            "seed": "0",
            "validation_fraction": "0.1",
            "learning_rate_schedule": "constant",
            "optimizer": "adam",
        }
        tags = {
            names.STAGE: "trial",
            names.ARCH: "mlp",
            names.STUDY: "mnist-mlp",
            names.OPTUNA_TRIAL_NUMBER: str(number),
            names.PARENT_RUN: parent.info.run_id,
            names.NOTE: f"Trial {number} of study mnist-mlp: mlp with learning rate 0.0012",
        }
        client.log_batch(
            run.info.run_id,
            metrics=metrics,
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.set_terminated(run.info.run_id, "FINISHED")
        if number and number % 1000 == 0:
            print(f"  {number} trial runs ({time.time() - started:.0f} s)", flush=True)
    client.set_terminated(parent.info.run_id, "FINISHED")


def environment(folder: Path) -> dict:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
    env.pop("MLFLOW_RUN_ID", None)
    env["PYTHONPATH"] = str(REPO)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 2000, 20000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", help="keep the stores here (default: a temporary folder)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        root = Path(options.keep or tmp)
        base = root / "base"
        train_run = base_store(base, options.source)
        commands = {
            "floor": [sys.executable, "-c", FLOOR],
            "report": [*PIPELINE, "report", "--output-dir", "out"],
            "reap": [*PIPELINE, "reap"],
            "main": [*PIPELINE, "main", "--arch", "mlp", "--source", options.source],
            "evaluate": [*PIPELINE, "evaluate", "--run-id", train_run, "--no-register"],
        }
        results: dict[int, dict[str, tuple[float, float]]] = {}
        for size in options.sizes:
            folder = root / f"store-{size}"
            if not (folder / "filled").exists():
                shutil.rmtree(folder, ignore_errors=True)
                shutil.copytree(base, folder)
                print(f"filling a store with {size} trial runs", flush=True)
                fill(folder, size)
                (folder / "filled").touch()
            env = environment(folder)
            results[size] = {}
            for name, command in commands.items():
                runs = [measure(command, folder, env) for _ in range(options.repeats)]
                cpu = statistics.median(run[0] for run in runs)
                rss = statistics.median(run[1] for run in runs)
                results[size][name] = (cpu, rss)
            first = results[options.sizes[0]]
            line = ", ".join(
                f"{name} {cpu:.2f} CPU-s ({cpu / first[name][0]:.2f}x) {rss:.0f} MB "
                f"({rss - first[name][1]:+.0f})"
                for name, (cpu, rss) in results[size].items()
            )
            print(f"N={size}: {line}", flush=True)
        floor = {size: results[size]["floor"][0] for size in options.sizes}
        for size in options.sizes:
            ratios = ", ".join(
                f"{name} {results[size][name][0] / floor[size]:.2f}x"
                for name in commands
                if name != "floor"
            )
            print(f"N={size} against MLflow's floor: {ratios}", flush=True)


if __name__ == "__main__":
    main()
