"""The report stage: the runs it shows (server-side queries) -> the tables (report_tables) ->
reports/: a markdown comparison and figures, logged on a report run."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from pipeline import data, figures, tracking
from pipeline.errors import PipelineError, redact
from pipeline.report_tables import (
    comparison_table,
    official_test_set,
    tag,
    tuning_summary,
    values_of,
    with_median_throughput,
)
from pipeline.tracking import names

NO_RUNS = "No train runs in this experiment yet: `pipeline train` or `pipeline main` makes them."
CURVES = (names.BATCH_LOSS, names.VAL_ACCURACY)  # the learning-curve figure's
HISTORIES = (*CURVES, names.SAMPLES_PER_SECOND)


@dataclass(frozen=True)
class Report:
    """What `pipeline report` wrote."""

    folder: Path
    table: pd.DataFrame
    tuning: pd.DataFrame
    run_id: str


def load_runs(
    store: tracking.Store, experiment: str, run_ids: list[str] | None = None
) -> pd.DataFrame:
    """The runs the report draws on, newest first: the train runs (its table picks the newest of
    each arch and variant), every study's tune run and the newest download; or only run_ids,
    when given. Each is one server-side query by stage, so a store full of trial runs costs
    little here (each query scans the stage tags once: bench/store_scale.py)."""
    experiment_id = tracking.experiment_id_of(experiment)
    if experiment_id is None:
        raise PipelineError(
            f"--experiment {experiment}: no such experiment in {redact(store.uri)}"
        )
    train = tracking.Match(tags={names.STAGE: "train"})
    if run_ids:
        frame = tracking.finished_runs(experiment_id, replace(train, run_ids=tuple(run_ids)))
        found = set(frame["run_id"]) if not frame.empty else set()
        unknown = [run_id for run_id in run_ids if run_id not in found]
        if unknown:
            raise PipelineError(
                f"--run-id {unknown[0]}: not a finished train run of experiment {experiment}"
            )
        return frame
    frames = [
        tracking.finished_runs(experiment_id, train),
        tracking.finished_runs(experiment_id, tracking.Match(tags={names.STAGE: "tune"})),
        tracking.finished_runs(
            experiment_id, tracking.Match(tags={names.STAGE: "download"}, max_results=1)
        ),
    ]
    frames = [frame for frame in frames if not frame.empty]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True).sort_values("start_time", ascending=False)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str) and len(value) > 8:  # params come back as text: 0.00075019...
        with contextlib.suppress(ValueError):
            return f"{float(value):.3g}"
    if isinstance(value, float) and 0 < abs(value) < 0.01:
        return f"{value:.3g}"
    if isinstance(value, float):
        return f"{value:.4f}" if value < 1.5 else f"{value:,.0f}"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub markdown table (no extra dependency)."""
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + " --- |" * len(frame.columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return "\n".join(lines)


def _data_line(frame: pd.DataFrame) -> str:
    downloads = (
        frame[values_of(frame, tag(names.STAGE)) == "download"] if not frame.empty else frame
    )
    if downloads.empty:
        return "Data: unknown (no download run in this experiment)."
    latest = downloads.iloc[0]
    official = latest.get(names.column("params", names.OFFICIAL_PARAM)) == "True"
    train, test = latest.get("metrics.train_count", 0), latest.get("metrics.test_count", 0)
    counts = f"{int(train)} training / {int(test)} test images"
    kind = "the official MNIST set" if official else "NOT the official MNIST set"
    return (
        f"Data: {counts} from {describe_source(latest.get('params.source'))} ({kind}), "
        f"digest `{latest.get(tag(names.DATA_DIGEST))}`."
    )


def describe_source(source) -> str:
    """Where the data came from, without any machine's folder layout (reports are shared)."""
    if not isinstance(source, str) or not source:
        return "an unknown source"
    if "://" in source and not source.startswith("file://"):
        return f"`{source}`"  # mirrors and http sources (already redacted)
    return f"a local folder `{Path(source.removeprefix('file://')).name}`"


def short_id(run_id) -> str:
    return run_id[:8] if isinstance(run_id, str) else ""


def render(
    table: pd.DataFrame, tuning: pd.DataFrame, data_line: str, official: bool | None = True
) -> str:
    """The report's markdown; on a test set that is not MNIST's official one (official False)
    titled so, without the notebooks' published numbers, which were measured on that one."""
    title = ["# MNIST: notebooks vs pipeline"]
    if official is False:
        title = [
            "# Notebooks' models vs pipeline, on data that is not MNIST's official test set",
            "",
            "The notebooks' published accuracies were measured on MNIST's official test set, so "
            "they are not shown beside these.",
        ]
    return "\n".join(
        [
            *title,
            "",
            data_line,
            "",
            "Test accuracy is on the test set of the data above (evaluate stage); validation "
            "accuracy on the seeded, stratified split of the training set; samples_per_second is "
            "the median over a run's epochs.",
            "",
            markdown_table(
                table.drop(columns=["run_id"]).assign(run=table["run_id"].map(short_id))
            ),
            "",
            *([NO_RUNS, ""] if table["run_id"].isna().all() else []),
            "![learning curves](learning_curves.png)",
            "",
            "## Tuning",
            "",
            "val_gain: the best trial over the study's preset trial on the same validation "
            "images, in points, with its 95 % interval and p-value adjusted for choosing the "
            "best among the study's complete trials (max-T paired bootstrap); test_gain above: "
            "a tuned model over its study's baseline (the start preset as trial 0 trained it) "
            "on the same test images, exact McNemar p-value. Better, within noise or worse: at "
            "the 5 % level.",
            "",
            markdown_table(tuning.drop(columns=["verdict", "pruning", "search"]))
            if not tuning.empty
            else "No studies in this experiment.",
            "",
            *[
                f"- {row.study}: {row.verdict}."
                + (
                    f" {row.pruning[0].upper()}{row.pruning[1:]}."
                    if isinstance(row.pruning, str)
                    else ""
                )
                + (f" Search: {row.search}." if isinstance(row.search, str) else "")
                for row in tuning.itertuples()
                if isinstance(row.verdict, str)
            ],
            "",
        ]
    )


def write_report(
    folder: Path, experiment: str | None = None, run_ids=None, *, store: tracking.Store
) -> Report:
    """Write report.md and learning_curves.png into folder and log them on a report run.

    Each file is written under a temporary name and renamed, so a failed write keeps the old one.
    """
    store.open()
    frame = load_runs(store, experiment or tracking.current_experiment(), run_ids)
    table, tuning = comparison_table(frame), tuning_summary(frame)
    histories = {
        row.run_id: {key: tracking.metric_history(row.run_id, key) for key in HISTORIES}
        for row in table.itertuples()
        if isinstance(row.run_id, str)
    }
    table = with_median_throughput(table, histories)
    curves = {
        f"{row.arch} {row.variant}": {key: histories[row.run_id][key] for key in CURVES}
        for row in table.itertuples()
        if isinstance(row.run_id, str)
    }
    figure = figures.learning_curves(curves)
    try:
        data.atomic_write(
            folder / "learning_curves.png", lambda path: figure.savefig(path, format="png")
        )
    finally:
        figures.close(figure)
    markdown = render(table, tuning, _data_line(frame), official_test_set(frame))
    data.atomic_write(folder / "report.md", lambda path: path.write_text(markdown))
    with tracking.run("report", "report") as run:
        # The report's own files only: the folder may hold anything (the store itself, say,
        # with --output-dir .), and logging it whole would copy the store into itself.
        for name in ("report.md", "learning_curves.png"):
            run.log_artifact(folder / name, "report")
        run.describe(describe(table, tuning))
        return Report(folder, table, tuning, run.run_id)


def describe(table: pd.DataFrame, tuning: pd.DataFrame) -> str:
    """The report run's description: what it compared and the best test accuracy per arch."""
    runs = table[table["run_id"].notna()]
    if runs.empty:
        return "Report with the notebooks' published numbers only: no train runs yet."
    best = []
    for arch, rows in runs.groupby("arch", sort=False):
        tested = rows[rows[names.TEST_ACCURACY].notna()]
        if not tested.empty:
            top = tested.loc[tested[names.TEST_ACCURACY].astype(float).idxmax()]
            best.append(f"{arch} {float(top.test_accuracy):.4f} ({top.variant})")
    return (
        f"Report comparing {len(runs)} train runs with the notebooks"
        + (f" and {len(tuning)} studies" if not tuning.empty else "")
        + ". Best test accuracy: "
        + (", ".join(best) or "none evaluated yet")
        + "."
    )
