"""The commands that look after the stores: ui, reap, init-stores."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline import config as cfg
from pipeline.cli import console, edge
from pipeline.cli.options import CheckpointDir, Storage, checkpoint_dir_of, option
from pipeline.errors import redact


def ui(
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = cfg.DEFAULT_UI_PORT,
    host: Annotated[
        str, typer.Option("--host", help="Interface; loopback unless you mean it.")
    ] = cfg.DEFAULT_UI_HOST,
    storage: Storage = None,
) -> None:
    """Start the MLflow UI on the project's store (and say how to open optuna-dashboard)."""
    from pipeline import tracking
    from pipeline.cli import ui_server

    store = edge.tracking_store(reap=False).open()  # a store that cannot be opened: one line
    experiment = tracking.current_experiment_id()
    storage = storage or cfg.DEFAULT_OPTUNA_STORAGE
    raise typer.Exit(ui_server.serve(host, port, store.uri, storage, experiment, typer.echo))


def reap(
    stale_after: Annotated[
        float | None,
        option(
            "--stale-after",
            help="Seconds without a heartbeat (default: "
            f"{cfg.MISSED_BEATS} of the run's own intervals).",
        ),
    ] = None,
    include_unbeating: Annotated[
        bool,
        typer.Option(
            "--include-unbeating/--no-include-unbeating",
            help="Also reap RUNNING runs that never sent a heartbeat (needs --older-than).",
        ),
    ] = False,
    older_than: Annotated[
        str | None,
        option(
            "--older-than",
            help="With --include-unbeating: started more than DURATION ago (90s, 30m, 2h, 1d; "
            "no default).",
        ),
    ] = None,
    checkpoint_dir: CheckpointDir = None,
) -> None:
    """Mark runs whose process died (no heartbeat) KILLED; live runs elsewhere are left alone."""
    config = cfg.ReapConfig(stale_after, include_unbeating, older_than)
    from pipeline import checkpoints, tracking

    edge.tracking_store(reap=False).open()
    reaped = tracking.reap(config.stale_after, config.unbeating_age())
    console.print_reap_summary(reaped, checkpoints.tidy(checkpoint_dir_of(checkpoint_dir)))


def init_stores(storage: Storage = None) -> None:
    """Create the MLflow and Optuna schemas once, before parallel tune workers start."""
    storage = storage or cfg.DEFAULT_OPTUNA_STORAGE
    from pipeline.tuning import storage as study_storage

    store = edge.tracking_store().open()
    study_storage.init_storage(storage)
    typer.echo(f"Ready: MLflow store {redact(store.uri)}, Optuna storage {redact(storage)}")
