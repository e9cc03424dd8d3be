"""The report's tables from runs (a mlflow.search_runs DataFrame): the comparison of each arch's
notebook, presets and tuned best, and one row per study. reporting queries, renders and writes."""

from __future__ import annotations

import contextlib
import statistics

import pandas as pd

from pipeline import paired
from pipeline.architectures import REGISTRY
from pipeline.tracking import names

VARIANTS = ("seed preset", "default preset", "tuned best")
COLUMNS = [
    "arch",
    "variant",
    names.TEST_ACCURACY,
    "test_gain",  # a tuned model's, over its study's baseline on the same test images
    names.VAL_ACCURACY,
    "learning_rate",
    "hidden_size",
    "epochs",
    "batch_size",
    names.TRAIN_SECONDS,
    names.SAMPLES_PER_SECOND,
    "run_id",
]


def tag(key: str) -> str:
    """The search_runs column of a tag."""
    return names.column("tags", key)


def values_of(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series([None] * len(frame), index=frame.index)


def _variant(frame: pd.DataFrame) -> pd.Series:
    tuned = values_of(frame, tag(names.TUNED_FROM)).notna()
    preset = values_of(frame, "params.preset")
    return pd.Series(
        ["tuned best" if t else f"{p} preset" for t, p in zip(tuned, preset, strict=True)],
        index=frame.index,
    )


TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")  # their params' stems


def official_test_set(frame: pd.DataFrame) -> bool | None:
    """Whether the newest download's test files are MNIST's official ones (None: no download
    run says): only then do the notebooks' published accuracies compare with the runs'."""
    stage = values_of(frame, tag(names.STAGE))
    downloads = frame[stage == "download"] if not frame.empty else frame
    if downloads.empty:
        return None
    latest = downloads.iloc[0]
    flags = [latest.get(names.column("params", names.file_official(stem))) for stem in TEST_FILES]
    return all(flag == "True" for flag in flags)


def comparison_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per arch: the notebook's number (when the test set is MNIST's official one, or unknown),
    then the newest run of each variant (evaluated first)."""
    rows = []
    stage = values_of(frame, tag(names.STAGE))
    trains = frame[stage == "train"] if not frame.empty else frame
    variants = _variant(trains) if not trains.empty else pd.Series(dtype=str)
    published = official_test_set(frame) is not False
    for arch, entry in REGISTRY.items():
        if published:
            rows.append(
                {
                    "arch": arch,
                    "variant": "notebook (published)",
                    names.TEST_ACCURACY: entry.notebook_accuracy,
                }
            )
        for variant in VARIANTS:
            if trains.empty:
                continue
            chosen = trains[(values_of(trains, "params.arch") == arch) & (variants == variant)]
            if chosen.empty:
                continue
            evaluated = chosen[values_of(chosen, "metrics.test_accuracy").notna()]
            best = (evaluated if not evaluated.empty else chosen).iloc[0]
            row = {"arch": arch, "variant": variant, "run_id": best["run_id"]}
            if variant == "tuned best":  # which study, built on which preset
                study = best.get(tag(names.TUNED_FROM))
                preset = best.get(tag(names.BASELINE_PRESET))
                start = f", from the {preset} preset" if isinstance(preset, str) else ""
                row["variant"] = f"tuned best ({study}{start})"
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
    return f"{gain:+.2f} pt ({low:+.2f} to {high:+.2f}), p = {paired.p_text(p_value)}"


def tuning_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per study: trials, pruned share, tune_seconds (the seconds of its tune runs,
    summed: a resumed study's wall time; with workers at once, more than the wall time), best
    value and params."""
    if frame.empty or tag(names.STUDY) not in frame:
        columns = [
            "study",
            "arch",
            "trials",
            names.PRUNED_SHARE,
            "tune_seconds",
            names.BEST_VAL_ACCURACY,
        ]
        words = ["verdict", "pruning", "search"]  # shown under the table
        return pd.DataFrame(columns=[*columns, "val_gain", "best_params", *words])
    parents = frame[values_of(frame, tag(names.STAGE)) == "tune"]
    rows = []
    for study, runs in parents.groupby(tag(names.STUDY)):
        latest = runs.iloc[0]
        trials = int(latest.get(tag(names.OPTUNA_TRIALS)) or 0)
        pruned = int(latest.get(tag(names.OPTUNA_PRUNED)) or 0)
        prefix = tag(names.BEST_PREFIX)
        best = {
            key[len(prefix) :]: value
            for key, value in latest.items()
            if key.startswith(prefix) and pd.notna(value) and key != tag(names.BEST_TRIAL_NUMBER)
        }
        rows.append(
            {
                "study": study,
                "arch": latest.get(tag(names.ARCH)),
                "trials": trials,
                names.PRUNED_SHARE: pruned / trials if trials else 0.0,
                "tune_seconds": (runs["end_time"] - runs["start_time"]).dt.total_seconds().sum(),
                names.BEST_VAL_ACCURACY: latest.get(
                    names.column("metrics", names.BEST_VAL_ACCURACY)
                ),
                "val_gain": gain_text(latest, "val"),
                "best_params": ", ".join(f"{k}={_param(v)}" for k, v in sorted(best.items())),
                "verdict": latest.get(tag(names.VERDICT)),
                "pruning": latest.get(tag(names.PRUNING)),
                "search": _search_words(latest),
            }
        )
    return pd.DataFrame(rows)


def _search_words(latest: pd.Series) -> str | None:
    """A study's ranges, the best's edges and whether its search settled, in words (None: a
    study from before they were recorded)."""
    ranges = latest.get(tag(names.RANGES))
    if not isinstance(ranges, str):
        return None
    words = [f"ranges {ranges}"]
    edges = latest.get(tag(names.RANGE_EDGES))
    if isinstance(edges, str) and edges != "none":
        words.append(edges)
    if latest.get(tag(names.SEARCH_SETTLED)) == "false":
        words.append("the search had not settled (its best came in its last quarter of trials)")
    return "; ".join(words)


def _param(text: str) -> str:
    """A tuned param as people read it: 0.00788 for 0.007881575189034951; 95 and cosine as is."""
    try:
        return str(int(text))
    except ValueError:
        with contextlib.suppress(ValueError):
            return f"{float(text):.3g}"
    return text


def with_median_throughput(table: pd.DataFrame, histories: dict) -> pd.DataFrame:
    """samples_per_second as the median over each run's epochs: its latest value is one epoch's,
    at the mercy of whatever else the machine ran then."""
    medians = [
        statistics.median(value for _, value in histories[run_id][names.SAMPLES_PER_SECOND])
        if run_id in histories and histories[run_id][names.SAMPLES_PER_SECOND]
        else None
        for run_id in table["run_id"]
    ]
    return table.assign(samples_per_second=medians)
