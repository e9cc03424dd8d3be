"""The only package that imports mlflow: a small API the stages call.

names         every tag, param and metric key the project writes or reads
store         the store a process opens once (tracking URI, experiment, reaping dead runs)
runs          the run context with true end states, and a handle that logs onto a run
heartbeat     run heartbeats and the reaper
step_metrics  per-step metrics, buffered and sent asynchronously, spooled when the store is lost
logged_models logging a model into a run: signature, requirements, linked metrics
registry      resolving and loading model URIs, the model registry's champion gate
datasets      mlflow.data inputs
queries       reading runs and metrics back
"""

from pipeline.tracking import names
from pipeline.tracking.datasets import log_dataset
from pipeline.tracking.heartbeat import reap
from pipeline.tracking.logged_models import link_metrics, log_model
from pipeline.tracking.queries import (
    Match,
    check_resumable,
    config_hash,
    experiment_id_of,
    find_finished,
    finished_runs,
    latest_metrics,
    metric_history,
    newest_evaluation_of,
    read_text,
    run_params,
    run_tags,
)
from pipeline.tracking.registry import (
    ModelTarget,
    Registration,
    load_model,
    register_if_better,
    resolve_model,
)
from pipeline.tracking.runs import (
    Run,
    finish_run,
    run,
)
from pipeline.tracking.step_metrics import StepMetricSink, replay_spool
from pipeline.tracking.store import (
    Store,
    configure_process,
    current_experiment,
    current_experiment_id,
    record_system_metrics,
)

__all__ = [
    "Match",
    "ModelTarget",
    "experiment_id_of",
    "link_metrics",
    "names",
    "Registration",
    "Run",
    "StepMetricSink",
    "check_resumable",
    "config_hash",
    "current_experiment",
    "current_experiment_id",
    "find_finished",
    "finish_run",
    "finished_runs",
    "latest_metrics",
    "load_model",
    "log_dataset",
    "log_model",
    "metric_history",
    "newest_evaluation_of",
    "read_text",
    "run_params",
    "reap",
    "record_system_metrics",
    "register_if_better",
    "replay_spool",
    "resolve_model",
    "run",
    "run_tags",
    "Store",
    "configure_process",
]
