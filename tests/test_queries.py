"""Commands ask the store only for the runs they show: a store full of trial runs costs them
nothing (bench/store_scale.py measures the time; this counts the runs MLflow hands back)."""

from __future__ import annotations

import time

import mlflow
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from pipeline.tracking import names

TRIALS = 200


def fill_with_trials(experiment_id: str, parent: str, count: int) -> set[str]:
    """count FINISHED trial runs like a study's (tags, params, a curve), via MLflow's client."""
    client = MlflowClient()
    made = set()
    now = int(time.time() * 1000)
    for number in range(count):
        run = client.create_run(experiment_id, run_name=f"mnist-mlp-trial-{number}")
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(names.VAL_ACCURACY, 0.9, now, step) for step in range(5)],
            params=[Param("arch", "mlp"), Param("preset", "default"), Param("epochs", "20")],
            tags=[
                RunTag(names.STAGE, "trial"),
                RunTag(names.ARCH, "mlp"),
                RunTag(names.STUDY, "mnist-mlp"),
                RunTag(names.PARENT_RUN, parent),
            ],
        )
        client.set_terminated(run.info.run_id, "FINISHED")
        made.add(run.info.run_id)
    return made


@pytest.fixture
def counted(monkeypatch):
    """The ids of every run MLflow's client returns from a search, in order."""
    returned: list[str] = []
    real = MlflowClient.search_runs

    def counting(self, *args, **kwargs):
        page = real(self, *args, **kwargs)
        returned.extend(run.info.run_id for run in page)
        return page

    monkeypatch.setattr(MlflowClient, "search_runs", counting)
    return returned


@pytest.mark.slow
def test_report_and_reap_fetch_no_trial_run(cli, workdir, data_dir, tiny, counted):
    assert cli(*tiny.train).exit_code == 0
    train = mlflow.search_runs(experiment_names=["mnist"]).iloc[0]
    assert cli("evaluate", "--run-id", train["run_id"], "--no-register").exit_code == 0
    with mlflow.start_run(experiment_id=train["experiment_id"], run_name="tune") as parent:
        mlflow.set_tags({names.STAGE: "tune", names.STUDY: "mnist-mlp", names.ARCH: "mlp"})
    trials = fill_with_trials(train["experiment_id"], parent.info.run_id, TRIALS)
    counted.clear()

    result = cli("report", "--output-dir", workdir / "out")
    assert result.exit_code == 0, result.stderr
    assert trials.isdisjoint(counted), "report fetched trial runs"
    downloads = set(
        mlflow.search_runs(filter_string="tags.`pipeline.stage` = 'download'")["run_id"]
    )
    shown = {train["run_id"], parent.info.run_id} | downloads
    assert sorted(counted) == sorted(shown)  # each run it shows, once
    text = (workdir / "out" / "report.md").read_text()
    assert "| mlp | default preset |" in text and "| mnist-mlp | mlp |" in text

    counted.clear()
    assert cli("reap").exit_code == 0
    assert counted == []  # nothing is RUNNING: no run comes back


def test_a_sqlite_store_gets_planner_statistics_so_one_runs_history_is_read_by_run(cli, workdir):
    import contextlib
    import sqlite3

    assert cli("init-stores").exit_code == 0
    experiment = MlflowClient().get_experiment_by_name("mnist").experiment_id
    with mlflow.start_run(experiment_id=experiment) as parent:
        pass
    run_id = sorted(fill_with_trials(experiment, parent.info.run_id, 60))[0]
    query = (  # as MLflow's get_metric_history asks it
        "EXPLAIN QUERY PLAN SELECT * FROM metrics WHERE run_uuid = ? AND key = ? "
        "ORDER BY timestamp, step, value"
    )
    with contextlib.closing(sqlite3.connect(workdir / "mlflow.db")) as db:
        before = str(db.execute(query, (run_id, names.VAL_ACCURACY)).fetchall())
    assert "run_uuid=?" not in before  # SQLite's guess: every run's points of the metric
    assert cli("reap").exit_code == 0  # any command that opens the store
    with contextlib.closing(sqlite3.connect(workdir / "mlflow.db")) as db:
        after = str(db.execute(query, (run_id, names.VAL_ACCURACY)).fetchall())
    assert "index_metrics_run_uuid_key_step (run_uuid=? AND key=?)" in after, after
