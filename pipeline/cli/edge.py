"""What a command sets up for its process, once, before it calls a stage: the tracking store
(as MLFLOW_TRACKING_URI names it, else the house default), MLflow's process-wide settings and
system metrics. Stages take the store as an argument and never read the environment for it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from pipeline import config as cfg

if TYPE_CHECKING:
    from pipeline import tracking


def tracking_store(system_metrics: bool | None = None, reap: bool = True) -> tracking.Store:
    """The process's tracking store, opened by the first stage that logs (reaping dead runs
    then, with reap, each said on stderr). --system-metrics: MLflow samples CPU and memory on
    each run this process starts."""
    from pipeline import tracking

    uri = cfg.tracking_uri()
    tracking.configure_process(uri)
    if system_metrics is not None:
        tracking.record_system_metrics(system_metrics)
    return tracking.Store(uri, reap=reap, say=lambda line: typer.echo(line, err=True))
