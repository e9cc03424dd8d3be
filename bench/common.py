"""The harness the benches share: a work folder with its own stores, the pipeline run as a user
runs it (`python -m pipeline ...` in that folder), and its results read back from MLflow, never
scraped from console text.

    from common import Workspace  # bench/, beside the scripts
    work = Workspace.create(args.workdir, "accuracy-")
    work.pipeline("download", "--source", source)
    trained, evaluated = work.train_and_evaluate("--arch", "mlp")
    trained.data.metrics["val_accuracy"], evaluated.data.metrics["test_accuracy"]
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.entities import Run

from pipeline.tracking import names

PIPELINE = [sys.executable, "-m", "pipeline"]


def children_cpu() -> float:
    """CPU seconds (user and system) of this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Workspace:
    """A folder holding a bench's stores (MLflow's sqlite:///FOLDER/mlflow.db, Optuna's
    optuna.db), its data and checkpoints; this process reads the same MLflow store."""

    folder: Path
    env: dict[str, str]

    @classmethod
    def create(cls, folder: Path | None = None, prefix: str = "bench-") -> Workspace:
        folder = Path(folder or tempfile.mkdtemp(prefix=prefix)).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        os.environ["MLFLOW_TRACKING_URI"] = uri
        mlflow.set_tracking_uri(uri)
        print(f"working directory {folder}", flush=True)
        return cls(folder, {**os.environ, "MLFLOW_TRACKING_URI": uri})

    @property
    def optuna_storage(self) -> str:
        return f"sqlite:///{self.folder / 'optuna.db'}"

    def pipeline(self, *args: str, env: dict[str, str] | None = None, workers: int = 1) -> str:
        """Run `pipeline ARGS` here (in `workers` processes at once); the first one's stdout. A
        failure ends the bench with its stderr."""
        processes = [
            subprocess.Popen(
                [*PIPELINE, *map(str, args)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=self.folder,
                env={**self.env, **(env or {})},
            )
            for _ in range(workers)
        ]
        outputs = [process.communicate() for process in processes]
        for process, (_, stderr) in zip(processes, outputs, strict=True):
            if process.returncode:
                words = " ".join(map(str, args))
                raise SystemExit(f"pipeline {words} failed:\n{stderr[-2000:]}")
        return outputs[0][0]

    def newest(self, stage: str, **tags: str) -> Run:
        """The newest run of a stage (with these tags, keyed by names.py constants' values)."""
        found = self.runs(stage, **tags)
        if not found:
            raise SystemExit(f"no {stage} run with {tags} in {self.folder}")
        return found[0]

    def runs(self, stage: str, **tags: str) -> list[Run]:
        """Every run of a stage (with these tags), newest first."""
        conditions = [f"tags.`{names.STAGE}` = '{stage}'"]
        conditions += [f"tags.`{key}` = '{value}'" for key, value in tags.items()]
        client = mlflow.MlflowClient(self.env["MLFLOW_TRACKING_URI"])
        experiments = [each.experiment_id for each in client.search_experiments()]
        return client.search_runs(
            experiments,
            filter_string=" and ".join(conditions),
            order_by=["attributes.start_time DESC"],
        )

    def train(self, *options: str) -> Run:
        """`pipeline train OPTIONS` (no progress lines): its run."""
        self.pipeline("train", "--no-progress", *options)
        return self.newest("train")

    def evaluate(self, trained: Run) -> Run:
        """`pipeline evaluate` of a train run (not registered): its evaluate run."""
        self.pipeline("evaluate", "--run-id", trained.info.run_id, "--no-register")
        return self.newest("evaluate", **{names.EVALUATED_RUN: trained.info.run_id})

    def train_and_evaluate(self, *options: str) -> tuple[Run, Run]:
        trained = self.train(*options)
        return trained, self.evaluate(trained)

    def with_store(self, uri: str) -> Workspace:
        """The same folder, its runs going to (and read from) the store at uri."""
        return Workspace(self.folder, {**self.env, "MLFLOW_TRACKING_URI": uri})

    def metric_values(self, run: Run, key: str) -> list[float]:
        """A run's values of a metric, by step."""
        client = mlflow.MlflowClient(self.env["MLFLOW_TRACKING_URI"])
        history = client.get_metric_history(run.info.run_id, key)
        return [point.value for point in sorted(history, key=lambda point: point.step)]

    def study_run(self, study_name: str) -> Run:
        """The tune run of a study."""
        return self.newest("tune", **{names.STUDY: study_name})


def kept_val_accuracy(work: Workspace, trained: Run) -> float:
    """The validation accuracy of the model a train run kept: its best epoch's, with early
    stopping (pipeline.best_epoch), else its last epoch's."""
    values = work.metric_values(trained, names.VAL_ACCURACY)
    best = trained.data.tags.get(names.BEST_EPOCH)
    return values[int(best) - 1] if best else values[-1]
