"""Runs from mlflow.search_runs -> pandas -> reports/: a markdown comparison and figures."""

from __future__ import annotations

import contextlib
import math
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from pipeline import config as cfg
from pipeline import data, figures, tracking
from pipeline.architectures import REGISTRY
from pipeline.errors import PipelineError, redact
from pipeline.tracking import names

VARIANTS = ("seed preset", "default preset", "tuned best")
NO_RUNS = "No train runs in this experiment yet: `pipeline train` or `pipeline main` makes them."
COLUMNS = [
    "arch",
    "variant",
    "test_accuracy",
    "test_gain",  # a tuned model's, over the default preset's on the same test images
    "val_accuracy",
    "learning_rate",
    "hidden_size",
    "epochs",
    "batch_size",
    "train_seconds",
    "samples_per_second",
    "run_id",
]
CURVES = (names.BATCH_LOSS, names.VAL_ACCURACY)  # the learning-curve figure's
HISTORIES = (*CURVES, names.SAMPLES_PER_SECOND)


@dataclass(frozen=True)
class Report:
    """What `pipeline report` wrote."""

    folder: Path
    table: pd.DataFrame
    tuning: pd.DataFrame
    run_id: str


def load_runs(experiment: str, run_ids: list[str] | None = None) -> pd.DataFrame:
    """The runs the report draws on, newest first: the train runs (its table picks the newest of
    each arch and variant), every study's tune run and the newest download; or only run_ids,
    when given. Each is one server-side query by stage, so a store full of trial runs costs
    little here (each query scans the stage tags once: bench/store_scale.py)."""
    experiment_id = tracking.experiment_id_of(experiment)
    if experiment_id is None:
        uri = redact(cfg.tracking_uri())
        raise PipelineError(f"--experiment {experiment}: no such experiment in {uri}")
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


def _tag(key: str) -> str:
    """The search_runs column of a tag."""
    return names.column("tags", key)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series([None] * len(frame), index=frame.index)


def _variant(frame: pd.DataFrame) -> pd.Series:
    tuned = _column(frame, _tag(names.TUNED_FROM)).notna()
    preset = _column(frame, "params.preset")
    return pd.Series(
        ["tuned best" if t else f"{p} preset" for t, p in zip(tuned, preset, strict=True)],
        index=frame.index,
    )


def comparison_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per arch: the notebook's number, then the newest run of each variant (evaluated first)."""
    rows = []
    stage = _column(frame, _tag(names.STAGE))
    trains = frame[stage == "train"] if not frame.empty else frame
    variants = _variant(trains) if not trains.empty else pd.Series(dtype=str)
    for arch, entry in REGISTRY.items():
        rows.append(
            {
                "arch": arch,
                "variant": "notebook (published)",
                "test_accuracy": entry.notebook_accuracy,
            }
        )
        for variant in VARIANTS:
            if trains.empty:
                continue
            chosen = trains[(_column(trains, "params.arch") == arch) & (variants == variant)]
            if chosen.empty:
                continue
            evaluated = chosen[_column(chosen, "metrics.test_accuracy").notna()]
            best = (evaluated if not evaluated.empty else chosen).iloc[0]
            row = {"arch": arch, "variant": variant, "run_id": best["run_id"]}
            for name in COLUMNS[2:-1]:
                for prefix in ("metrics.", "params."):
                    if f"{prefix}{name}" in best and pd.notna(best[f"{prefix}{name}"]):
                        row[name] = best[f"{prefix}{name}"]
            row["test_gain"] = gain_text(best, "test")
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def gain_text(run: pd.Series, split: str) -> str | None:
    """A run's paired gain on split ("val" or "test") as people read it: +0.41 pt (+0.12 to
    +0.70), p 0.004; None when the run holds none."""
    keys = [names.column("metrics", key) for key in names.GAINS[split]]
    values = [run.get(key) for key in keys]
    if any(value is None or pd.isna(value) for value in values):
        return None
    gain, low, high, p_value = (float(value) for value in values)
    return f"{gain * 100:+.2f} pt ({low * 100:+.2f} to {high * 100:+.2f}), p {p_value:.2g}"


def tuning_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per study: trials, pruned share, tune_seconds (the seconds of its tune runs,
    summed: a resumed study's wall time; with workers at once, more than the wall time), best
    value and params."""
    if frame.empty or _tag(names.STUDY) not in frame:
        columns = ["study", "arch", "trials", "pruned_share", "tune_seconds", "best_val_accuracy"]
        words = ["verdict", "pruning"]  # shown under the table
        return pd.DataFrame(columns=[*columns, "val_gain", "best_params", *words])
    parents = frame[_column(frame, _tag(names.STAGE)) == "tune"]
    rows = []
    for study, runs in parents.groupby(_tag(names.STUDY)):
        latest = runs.iloc[0]
        trials = int(latest.get(_tag(names.OPTUNA_TRIALS)) or 0)
        pruned = int(latest.get(_tag(names.OPTUNA_PRUNED)) or 0)
        prefix = _tag(names.BEST_PREFIX)
        best = {
            key[len(prefix) :]: value
            for key, value in latest.items()
            if key.startswith(prefix) and pd.notna(value) and key != _tag(names.BEST_TRIAL_NUMBER)
        }
        rows.append(
            {
                "study": study,
                "arch": latest.get(_tag(names.ARCH)),
                "trials": trials,
                "pruned_share": pruned / trials if trials else 0.0,
                "tune_seconds": (runs["end_time"] - runs["start_time"]).dt.total_seconds().sum(),
                "best_val_accuracy": latest.get(names.column("metrics", names.BEST_VAL_ACCURACY)),
                "val_gain": gain_text(latest, "val"),
                "best_params": ", ".join(f"{k}={_param(v)}" for k, v in sorted(best.items())),
                "verdict": latest.get(_tag(names.VERDICT)),
                "pruning": latest.get(_tag(names.PRUNING)),
            }
        )
    return pd.DataFrame(rows)


def _param(text: str) -> str:
    """A tuned param as people read it: 0.00788 for 0.007881575189034951; 95 and cosine as is."""
    try:
        return str(int(text))
    except ValueError:
        with contextlib.suppress(ValueError):
            return f"{float(text):.3g}"
    return text


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
        frame[_column(frame, _tag(names.STAGE)) == "download"] if not frame.empty else frame
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
        f"digest `{latest.get(_tag(names.DATA_DIGEST))}`."
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


def render(table: pd.DataFrame, tuning: pd.DataFrame, data_line: str) -> str:
    """The report's markdown."""
    return "\n".join(
        [
            "# MNIST: notebooks vs pipeline",
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
            "images, in points, with its 95 % interval (paired bootstrap) and exact McNemar "
            "p-value; test_gain above: a tuned model over the newest evaluated default-preset "
            "model on the same test images.",
            "",
            markdown_table(tuning.drop(columns=["verdict", "pruning"]))
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
                for row in tuning.itertuples()
                if isinstance(row.verdict, str)
            ],
            "",
        ]
    )


def with_median_throughput(table: pd.DataFrame, histories: dict) -> pd.DataFrame:
    """samples_per_second as the median over each run's epochs: its latest value is one epoch's,
    at the mercy of whatever else the machine ran then."""
    medians = [
        statistics.median(value for _, value in histories[run_id]["samples_per_second"])
        if run_id in histories and histories[run_id]["samples_per_second"]
        else None
        for run_id in table["run_id"]
    ]
    return table.assign(samples_per_second=medians)


def write_report(folder: Path, experiment: str | None = None, run_ids=None) -> Report:
    """Write report.md and learning_curves.png into folder and log them on a report run.

    Each file is written under a temporary name and renamed, so a failed write keeps the old one.
    """
    tracking.setup()
    frame = load_runs(experiment or tracking.current_experiment(), run_ids)
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
    markdown = render(table, tuning, _data_line(frame))
    data.atomic_write(folder / "report.md", lambda path: path.write_text(markdown))
    with tracking.run("report", "report") as run:
        run.log_artifacts(folder, "report")
        run.describe(describe(table, tuning))
        return Report(folder, table, tuning, run.run_id)


def describe(table: pd.DataFrame, tuning: pd.DataFrame) -> str:
    """The report run's description: what it compared and the best test accuracy per arch."""
    runs = table[table["run_id"].notna()]
    if runs.empty:
        return "Report with the notebooks' published numbers only: no train runs yet."
    best = []
    for arch, rows in runs.groupby("arch", sort=False):
        tested = rows[rows["test_accuracy"].notna()]
        if not tested.empty:
            top = tested.loc[tested["test_accuracy"].astype(float).idxmax()]
            best.append(f"{arch} {float(top.test_accuracy):.4f} ({top.variant})")
    return (
        f"Report comparing {len(runs)} train runs with the notebooks"
        + (f" and {len(tuning)} studies" if not tuning.empty else "")
        + ". Best test accuracy: "
        + (", ".join(best) or "none evaluated yet")
        + "."
    )
