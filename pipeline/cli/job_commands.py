"""The commands over whole jobs: main (every stage as one parent run) and report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline import config as cfg
from pipeline.cli import console, edge
from pipeline.cli.options import (
    Arches,
    CheckpointDir,
    DataDir,
    Preset,
    ReportDir,
    Source,
    Storage,
    SystemMetrics,
    default_of,
    fields_given,
    given,
    option,
)
from pipeline.config import DataConfig
from pipeline.tune_config import MainConfig


def main_job(
    preset: Preset = None,
    arch: Arches = None,
    tune: Annotated[bool, typer.Option("--tune/--no-tune", help="Tune each arch first.")] = False,
    n_trials: Annotated[
        int | None,
        option(
            "--n-trials",
            help=f"Trials per arch when tuning (default: {default_of(MainConfig, 'n_trials')}).",
        ),
    ] = None,
    storage: Storage = None,
    source: Source = None,
    data_dir: DataDir = None,
    checkpoint_dir: CheckpointDir = None,
    report_dir: ReportDir = None,
    system_metrics: SystemMetrics = None,
) -> None:
    """Download, (tune,) train and evaluate each arch, then report: one parent run."""
    data = DataConfig(**given(data_dir=data_dir, source=source))
    config = MainConfig(**fields_given(MainConfig, {**locals(), "data": data}))
    from pipeline import workflow

    result = workflow.run_main(
        config,
        edge.tracking_store(system_metrics),
        say=typer.echo,
        progress=lambda label: console.training_progress(True, label),
    )
    console.print_main_summary(result)


def report(
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment",
            help=f"(default: MLFLOW_EXPERIMENT_NAME, else {cfg.DEFAULT_EXPERIMENT}).",
        ),
    ] = None,
    run_ids: Annotated[
        list[str] | None,
        typer.Option(
            "--run-id",
            help="Only these runs (repeatable; default: the newest of each kind).",
        ),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", help=f"Where to write (default: {cfg.DEFAULT_REPORT_DIR})."),
    ] = None,
) -> None:
    """Compare architectures, presets and tuned runs with the notebooks: reports/report.md."""
    from pipeline import reporting

    folder = output_dir or cfg.DEFAULT_REPORT_DIR
    written = reporting.write_report(
        folder, experiment, run_ids or None, store=edge.tracking_store()
    )
    console.print_report_summary(written, folder)
