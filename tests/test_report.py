"""The report stage: the comparison table, its figures and run, empty and odd stores."""

from __future__ import annotations

import re
import statistics

import mlflow
import pytest
from conftest import (
    add_hopeless_baseline,
    runs,
)


@pytest.mark.slow
def test_report_compares_variants(cli, workdir, data_dir, source, tiny):
    assert cli("download", "--source", source, "--force").exit_code == 0  # a download run
    assert cli("train", "--arch", "mlp", "--epochs", "2", *tiny.model).exit_code == 0
    first_default_run = runs().iloc[0]["run_id"]
    assert cli("evaluate", "--run-id", first_default_run, "--no-register").exit_code == 0
    seed = cli("train", "--arch", "mlp", "--preset", "seed", "--epochs", "1", *tiny.model)
    assert seed.exit_code == 0
    storage = f"sqlite:///{workdir / 'optuna.db'}"
    study = ("tune", "--arch", "mlp", "--epochs-range", "1", "2", "--storage", storage)
    study += ("--hidden-size-range", "8", "16", "--learning-rate-range", "0.01", "0.1")
    assert cli(*study, "--n-trials", "2").exit_code == 0
    add_hopeless_baseline(storage, "data-mlp")  # so that --retrain-best has a winner
    tuned = cli(*study, "--n-trials", "1", "--retrain-best")
    assert tuned.exit_code == 0, tuned.stderr
    assert "beats trial 2 (the default preset)" in tuned.stdout, tuned.stdout

    result = cli("report", "--output-dir", workdir / "out")
    assert result.exit_code == 0, result.stderr
    text = (workdir / "out" / "report.md").read_text()
    # Synthetic data: its test set is not MNIST's, so the notebooks' numbers do not compare.
    assert text.startswith("# Notebooks' models vs pipeline, on data that is not MNIST's")
    assert "notebook (published)" not in text
    assert "| mlp | seed preset |" in text
    assert "| mlp | tuned best (data-mlp, from the default preset) |" in text
    # --retrain-best trained and evaluated the study's baseline first (none was evaluated: the
    # 2-epoch run above is not the preset as trial 0 trains it): the newest default preset.
    frame = runs()
    tuned_run = frame[frame["tags.pipeline.tuned_from"] == "data-mlp"].iloc[0]
    hashed = tuned_run["tags.pipeline.baseline_config_hash"]
    trains = frame[frame["tags.pipeline.stage"] == "train"]
    (default_run,) = trains[trains["tags.pipeline.config_hash"] == hashed]["run_id"]
    assert default_run != first_default_run
    default_row = next(line for line in text.splitlines() if "| mlp | default preset |" in line)
    test_accuracy = mlflow.get_run(default_run).data.metrics["test_accuracy"]
    assert f"| {test_accuracy:.4f} |" in default_row
    throughputs = mlflow.MlflowClient().get_metric_history(default_run, "samples_per_second")
    assert len({m.value for m in throughputs}) > 1  # the median is not the latest epoch's
    assert f"| {statistics.median(m.value for m in throughputs):,.0f} |" in default_row
    # The tuning summary: 3 trials and the baseline, the gain over it and the verdict in words.
    summary = next(line for line in text.splitlines() if "| data-mlp | mlp | 4 |" in line)
    gain = mlflow.get_run(runs().query("`tags.pipeline.stage` == 'tune'").iloc[0]["run_id"])
    assert f"| {gain.data.metrics['val_gain_pt']:+.2f} pt (" in summary
    assert f"- data-mlp: {gain.data.tags['pipeline.verdict']}." in text
    assert f"Search: ranges {gain.data.tags['pipeline.ranges']}" in text  # how they grew
    frame = runs()
    study = frame[frame["tags.pipeline.stage"] == "tune"].iloc[0]
    seconds = (study["end_time"] - study["start_time"]).total_seconds()
    assert summary.split("|")[5].strip() == f"{seconds:,.0f}"  # tune_seconds: its wall time
    rate = re.search(r"learning_rate=([^,| ]+)", summary).group(1)
    assert rate == f"{float(rate):.3g}"  # rounded, as people read it
    assert "from a local folder `source` (NOT the official MNIST set)" in text
    assert str(workdir.parent) not in text  # no machine's absolute path in a shareable report
    assert (workdir / "out" / "learning_curves.png").stat().st_size > 1000
    frame = runs()
    report = frame[frame["tags.pipeline.stage"] == "report"].iloc[0]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(report["run_id"], "report")}
    assert artifacts == {"report/report.md", "report/learning_curves.png"}


def test_report_on_an_empty_store_writes_the_notebook_rows(cli, workdir):
    result = cli("report", "--output-dir", workdir / "out")
    assert result.exit_code == 0, result.stderr
    text = (workdir / "out" / "report.md").read_text()
    assert "| mlp | notebook (published) | 0.9475 |" in text
    assert "No train runs in this experiment yet" in text
    report = runs().iloc[0]
    assert report["tags.mlflow.note.content"].startswith("Report with the notebooks'")


def test_report_with_only_an_unevaluated_run(cli, workdir, data_dir, tiny):
    assert cli("train", "--arch", "mlp", "--epochs", "1", *tiny.model).exit_code == 0
    train = runs().iloc[0]
    result = cli("report", "--output-dir", workdir / "out")
    assert result.exit_code == 0, result.stderr
    text = (workdir / "out" / "report.md").read_text()
    row = next(line for line in text.splitlines() if "| mlp | default preset |" in line)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2] == cells[3] == "" and float(cells[4]) == pytest.approx(
        float(train["metrics.val_accuracy"]), abs=1e-4
    )
    assert "No train runs" not in text
    description = runs().iloc[0]["tags.mlflow.note.content"]
    assert "1 train runs" in description and "none evaluated yet" in description


def test_report_of_a_run_that_is_not_a_train_run_is_one_line(cli, workdir, source):
    from conftest import one_line_error

    assert cli("download", "--source", source).exit_code == 0
    download = runs().iloc[0]["run_id"]
    for run_id in ("0" * 32, download):
        result = cli("report", "--run-id", run_id, "--output-dir", workdir / "out")
        assert result.exit_code == 1
        assert f"--run-id {run_id}: not a finished train run" in one_line_error(result)
    assert set(runs()["tags.pipeline.stage"]) == {"download"}  # no report run
    assert not (workdir / "out").exists()


def test_a_report_into_the_working_folder_logs_its_own_files_only(cli, workdir):
    """`--output-dir .` once copied the working folder (store and artifacts included) into its
    own artifacts, level after level, until a path was too long; the copies stayed."""
    import mlflow

    before = sum(path.stat().st_size for path in workdir.rglob("*") if path.is_file())
    result = cli("report", "--output-dir", ".")
    assert result.exit_code == 0, result.stderr
    run_id = result.stdout.split("report run ")[-1].strip()
    logged = {item.path for item in mlflow.MlflowClient().list_artifacts(run_id, "report")}
    assert logged == {"report/report.md", "report/learning_curves.png"}
    after = sum(path.stat().st_size for path in workdir.rglob("*") if path.is_file())
    assert after - before < 2_000_000  # the report and its figure, twice at most


def test_the_notebooks_numbers_are_shown_only_beside_mnists_official_test_set():
    """The published accuracies were measured on MNIST's official test set: shown when the
    newest download's test files are the official ones (or no download says), else not."""
    import pandas as pd

    from pipeline.report_tables import comparison_table, official_test_set

    def downloaded(official: str) -> pd.DataFrame:
        row = {"run_id": "d", "tags.pipeline.stage": "download"}
        for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
            row[f"params.official.{stem}"] = official
        return pd.DataFrame([row])

    assert official_test_set(downloaded("True")) is True
    assert official_test_set(downloaded("False")) is False
    assert official_test_set(pd.DataFrame()) is None
    for frame, shown in ((downloaded("True"), True), (downloaded("False"), False)):
        variants = set(comparison_table(frame)["variant"])
        assert ("notebook (published)" in variants) == shown
