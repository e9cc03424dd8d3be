"""The main job (step caching, run structure), the report, and `mlflow run` entry points."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import urllib.request

import mlflow
import psutil
import pytest
from conftest import REPO, add_hopeless_baseline, free_port, runs, subprocess_env, wait_for


def children(parent_id: str):
    frame = runs()
    return frame[frame.get("tags.mlflow.parentRunId") == parent_id]


@pytest.mark.slow
def test_main_reuses_finished_steps_and_reruns_changed_ones(cli, workdir, source):
    args = ("main", "--arch", "mlp", "--source", source, "--report-dir", workdir / "reports")
    first = cli(*args)
    assert first.exit_code == 0, first.stderr
    parent = runs()
    parent = parent[parent["tags.pipeline.stage"] == "main"].iloc[0]
    assert parent["status"] == "FINISHED"
    kids = children(parent["run_id"])
    assert sorted(kids["tags.pipeline.stage"]) == ["download", "evaluate", "report", "train"]
    assert "reusing" not in first.stdout
    # Every run, the experiment and the registered model say what they are.
    notes = dict(zip(kids["tags.pipeline.stage"], kids["tags.mlflow.note.content"], strict=True))
    evaluated = kids[kids["tags.pipeline.stage"] == "evaluate"].iloc[0]
    accuracy = evaluated["metrics.test_accuracy"]
    assert f"test accuracy {accuracy:.4f}" in notes["evaluate"]
    assert notes["download"].startswith("Downloaded and verified MNIST")
    assert notes["train"].startswith("Trained mlp-default")
    assert "Validation accuracy" in notes["train"]
    assert f"mlp {accuracy:.4f} (default preset)" in notes["report"]
    assert parent["metrics.mlp_test_accuracy"] == accuracy
    assert f"Test accuracy: mlp {accuracy:.4f}" in parent["tags.mlflow.note.content"]
    client = mlflow.MlflowClient()
    experiment = client.get_experiment(parent["experiment_id"])
    assert "LSTM" in experiment.tags["mlflow.note.content"]
    assert "@champion" in client.get_registered_model("mnist-mlp").description
    assert "test accuracy" in client.get_model_version("mnist-mlp", "1").description

    second = cli(*args)
    assert second.exit_code == 0, second.stderr
    assert second.stdout.count("reusing") == 3  # download, train, evaluate
    assert "4 steps, 3 reused" in second.stdout
    main_runs = runs()
    latest_main = main_runs[main_runs["tags.pipeline.stage"] == "main"].iloc[0]
    assert latest_main["tags.pipeline.step.train_mlp"].endswith("(reused)")
    frame = runs()
    assert len(frame[frame["tags.pipeline.stage"] == "train"]) == 1

    third = cli(*args, "--preset", "seed")
    assert third.exit_code == 0, third.stderr
    assert "train mlp: reusing" not in third.stdout
    frame = runs()
    trains = frame[frame["tags.pipeline.stage"] == "train"]
    assert sorted(trains["params.preset"]) == ["default", "seed"]
    assert (workdir / "reports" / "report.md").is_file()


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
    add_hopeless_baseline(storage, "mnist-mlp")  # so that --retrain-best has a winner
    tuned = cli(*study, "--n-trials", "1", "--retrain-best")
    assert tuned.exit_code == 0, tuned.stderr
    assert "beats trial 2 (the default preset)" in tuned.stdout, tuned.stdout

    result = cli("report", "--output-dir", workdir / "out")
    assert result.exit_code == 0, result.stderr
    text = (workdir / "out" / "report.md").read_text()
    assert "| mlp | notebook (published) | 0.9475 |" in text
    assert "| lstm | notebook (published) | 0.9881 |" in text
    assert "| mlp | seed preset |" in text
    assert "| mlp | tuned best (mnist-mlp, from the default preset) |" in text
    # --retrain-best trained and evaluated the study's baseline first (none was evaluated: the
    # 2-epoch run above is not the preset as trial 0 trains it): the newest default preset.
    frame = runs()
    tuned_run = frame[frame["tags.pipeline.tuned_from"] == "mnist-mlp"].iloc[0]
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
    summary = next(line for line in text.splitlines() if "| mnist-mlp | mlp | 4 |" in line)
    gain = mlflow.get_run(runs().query("`tags.pipeline.stage` == 'tune'").iloc[0]["run_id"])
    assert f"| {gain.data.metrics['val_gain_pt']:+.2f} pt (" in summary
    assert f"- mnist-mlp: {gain.data.tags['pipeline.verdict']}." in text
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


def mlflow_run(workdir, entry: str, *params: str, experiment: str = "mnist"):
    args = [
        sys.executable,
        "-m",
        "mlflow",
        "run",
        str(REPO),
        "-e",
        entry,
        "--env-manager",
        "local",
        "--experiment-name",
        experiment,
    ]
    for param in params:
        args += ["-P", param]
    return subprocess.run(
        args, cwd=workdir, env=subprocess_env(workdir), capture_output=True, text=True, timeout=900
    )


@pytest.mark.slow
def test_mlflow_run_train_logs_into_the_run_it_creates(workdir, data_dir):
    done = mlflow_run(
        workdir,
        "train",
        "arch=mlp",
        "epochs=2",
        "hidden-size=16",
        f"data-dir={data_dir}",
        f"checkpoint-dir={workdir / 'ck'}",
        "progress=false",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    frame = runs()
    assert len(frame) == 1  # no stray or duplicate run
    row = frame.iloc[0]
    assert row["status"] == "FINISHED" and row["tags.pipeline.stage"] == "train"
    assert row["tags.mlflow.project.entryPoint"] == "train"
    assert row["params.learning_rate"] == "0.001"  # resolved from the preset
    assert row["params.hidden_size"] == "16" and row["params.hidden-size"] == "16"
    # 270 images, batches of 128 (the preset): 3 steps an epoch
    assert len(mlflow.MlflowClient().get_metric_history(row["run_id"], "batch_loss")) == 6


@pytest.mark.slow
def test_mlflow_run_train_with_preset_values_not_given(workdir, data_dir):
    """Options left to the preset are logged once, with the value the run used."""
    done = mlflow_run(
        workdir,
        "train",
        "arch=mlp",
        "hidden-size=8",
        f"data-dir={data_dir}",
        f"checkpoint-dir={workdir / 'ck'}",
        "progress=false",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    row = runs().iloc[0]
    assert row["status"] == "FINISHED"
    resolved = (row["params.epochs"], row["params.seed"], row["params.preset"])
    assert resolved == ("20", "0", "default")


@pytest.mark.slow
def test_mlflow_run_main_builds_one_parent_with_children(workdir, source):
    done = mlflow_run(
        workdir,
        "main",
        "arch=mlp",
        f"source={source}",
        f"data-dir={workdir / 'data'}",
        f"checkpoint-dir={workdir / 'ck'}",
        f"report-dir={workdir / 'reports'}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    frame = runs()
    parents = frame[frame["tags.pipeline.stage"] == "main"]
    assert len(parents) == 1
    parent = parents.iloc[0]
    assert parent["tags.mlflow.project.entryPoint"] == "main"
    kids = children(parent["run_id"])
    assert sorted(kids["tags.pipeline.stage"]) == ["download", "evaluate", "report", "train"]
    assert len(frame) == 5 and set(frame["status"]) == {"FINISHED"}


@pytest.mark.slow
def test_ui_answers_when_it_prints_its_link_and_stops_on_sigterm(workdir):
    """The URL comes once the server answers, as the deep link to the project's runs; the
    store's URI (a password, perhaps) is on no command line; SIGTERM stops every process."""
    port = free_port()
    env = {**subprocess_env(workdir), "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'ui.db'}"}
    ui = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "ui", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # so that a failing test can stop every process it started
    )

    def answers() -> bool:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status
        except OSError:
            return False

    def alive(process: psutil.Process) -> bool:
        try:
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    try:
        link = next(line for line in ui.stdout if line.startswith("MLflow UI: "))
        url = link.split()[2]
        assert urllib.request.urlopen(url, timeout=5).status == 200  # when printed, it answers
        mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
        experiment = mlflow.get_experiment_by_name("mnist").experiment_id
        assert url == f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs"
        server = psutil.Process(ui.pid).children(recursive=True)
        commands = [" ".join(process.cmdline()) for process in server]
        assert not [command for command in commands if "ui.db" in command], commands
        # MLflow's GenAI job runner (its huey consumers) is left off: nothing here uses it.
        assert not [command for command in commands if "huey" in command or "jobs" in command]
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=60)
        wait_for(lambda: not answers(), 30, "the UI server to stop")
        wait_for(lambda: not any(alive(process) for process in server), 30, "its workers to stop")
    finally:  # whatever failed, nothing this test started outlives it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ui.pid, signal.SIGKILL)
        ui.wait()


@pytest.mark.slow
def test_mlflow_run_main_puts_every_run_in_the_experiment_asked_for(workdir, source):
    def checkout() -> set[str]:
        status = ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"]
        done = subprocess.run(status, cwd=REPO, capture_output=True, text=True, check=True)
        return {line for line in done.stdout.splitlines() if "__pycache__" not in line}

    before = checkout()
    done = mlflow_run(workdir, "main", "arch=mlp", f"source={source}", experiment="elsewhere")
    assert done.returncode == 0, done.stderr[-3000:]
    assert checkout() == before  # nothing written into the project checkout
    assert (workdir / "data" / "mnist" / "mnist.npz").is_file()  # beside the store instead
    assert (workdir / "reports" / "report.md").is_file()
    frame = runs("elsewhere")
    assert len(frame) == 5 and set(frame["status"]) == {"FINISHED"}
    parent = frame[frame["tags.pipeline.stage"] == "main"].iloc[0]["run_id"]
    kids = frame[frame["tags.mlflow.parentRunId"] == parent]
    assert sorted(kids["tags.pipeline.stage"]) == ["download", "evaluate", "report", "train"]
    assert len(runs("mnist")) == 0 if mlflow.get_experiment_by_name("mnist") else True


def test_runs_go_to_the_experiment_id_in_the_environment(
    cli, workdir, data_dir, monkeypatch, tiny
):
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    experiment_id = mlflow.create_experiment("by-id")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    result = cli(*tiny.train)
    assert result.exit_code == 0, result.stderr
    run_id = runs("by-id").iloc[0]["run_id"]
    assert cli("evaluate", "--run-id", run_id, "--no-register").exit_code == 0
    assert cli("report", "--output-dir", "out").exit_code == 0
    stages = sorted(runs("by-id")["tags.pipeline.stage"])
    assert stages == ["evaluate", "report", "train"]


def test_the_project_describes_its_own_experiment_not_mlflows_default(cli, workdir, monkeypatch):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "Default")
    assert cli("init-stores").exit_code == 0
    client = mlflow.MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    assert "mlflow.note.content" not in client.get_experiment("0").tags
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "mine")
    assert cli("init-stores").exit_code == 0
    assert "LSTM" in client.get_experiment_by_name("mine").tags["mlflow.note.content"]


@pytest.mark.slow
def test_main_tune_without_a_real_winner_keeps_the_preset(cli, workdir, source):
    args = (
        "main",
        "--arch",
        "mlp",
        "--source",
        source,
        "--storage",
        f"sqlite:///{workdir / 'optuna.db'}",
    )
    assert cli(*args).exit_code == 0
    # One trial: the study's best is its trial 0, the preset itself, so nothing beat it.
    tuned = cli(*args, "--tune", "--n-trials", "1")
    assert tuned.exit_code == 0, tuned.stderr
    assert "tune mlp: no configuration beat trial 0 (the default preset, " in tuned.stdout
    assert (
        "by its validation curve): it is the best; so no tuned model: training the default "
        "preset" in tuned.stdout
    )
    assert "train mlp: reusing" in tuned.stdout  # the first main's preset run
    trains = runs()[runs()["tags.pipeline.stage"] == "train"]
    assert len(trains) == 1 and "tags.pipeline.tuned_from" not in trains  # no tuned run
    text = (workdir / "reports" / "report.md").read_text()
    assert "| mlp | default preset |" in text and "| mlp | tuned best" not in text
    versions = mlflow.MlflowClient().search_model_versions("name = 'mnist-mlp'")
    assert len(versions) == 1  # the champion stays


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


@pytest.mark.slow
def test_a_run_the_way_make_run_runs_it_leaves_the_clone_clean(tmp_path, source):
    """`make run` runs `pipeline main --arch both` in the checkout: whatever it writes (data,
    stores, checkpoints, the report) is git-ignored, so the clone stays clean and its runs
    record a clean commit; a change to the code then shows as dirty."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = {**subprocess_env(clone), "PYTHONPATH": str(clone)}  # the clone's own package
    env["MLFLOW_TRACKING_URI"] = "sqlite:///mlflow.db"  # MLflow's default, as make run uses it

    def main(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pipeline", "main", "--arch", "both", *args],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )

    done = main("--source", str(source))
    assert done.returncode == 0, done.stderr[-3000:]
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True
    )
    assert status.stdout == "", status.stdout
    assert (clone / "reports" / "report.md").is_file()
    mlflow.set_tracking_uri(f"sqlite:///{clone / 'mlflow.db'}")
    clean = mlflow.search_runs(search_all_experiments=True)
    assert set(clean["tags.mlflow.source.git.dirty"]) == {"false"}
    with (clone / "pipeline" / "errors.py").open("a") as handle:
        handle.write("\n# a local change\n")
    assert main("--source", str(source)).returncode == 0  # new code: no step is reused
    frame = mlflow.search_runs(search_all_experiments=True)
    changed = frame[~frame["run_id"].isin(clean["run_id"])]
    assert len(changed) and set(changed["tags.mlflow.source.git.dirty"]) == {"true"}


def test_main_shows_a_line_per_epoch_when_not_on_a_terminal(cli, workdir, source):
    """No terminal (a log, CI, a pipe): one line per epoch instead of silence while training."""
    from pipeline import architectures

    epochs = architectures.REGISTRY["mlp"].presets["default"]["epochs"]
    result = cli("main", "--source", source, "--report-dir", workdir / "out")
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("train mlp epoch")]
    assert len(lines) == epochs, result.stderr
    pattern = r"train mlp epoch (\d+)/(\d+): val_accuracy \d\.\d{4}, (\d+m)?\d+s elapsed, about "
    assert all(re.match(pattern, line) for line in lines), lines
    assert (
        lines[-1].startswith(f"train mlp epoch {epochs}/{epochs}:")
        and "about 0s left" in lines[-1]
    )


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
