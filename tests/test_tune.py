"""The tune stage on synthetic data: a study's runs, options and search space, pruning,
resume, and what it says."""

from __future__ import annotations

import re
import subprocess
import sys

import mlflow
import optuna
import pytest
from conftest import (
    one_line_error,
    runs,
    subprocess_env,
)
from study_helpers import storage_url, study_runs, tune


@pytest.mark.slow
def test_mlp_study_prunes_and_resumes(cli, workdir, data_dir, tiny):
    common = ("--arch", "mlp", "--pruner", "median", "--epochs-range", "2", "3")
    common += ("--learning-rate-range", "0.005", "0.05")
    first = tune(cli, workdir, tiny, *common, "--n-trials", "2")
    assert first.stdout.count("trial ") >= 2 and "best" in first.stdout
    rate = re.search(r"with learning_rate=(\S+) hidden_size=\d+ epochs=\d+;", first.stdout)
    assert rate and rate.group(1) == f"{float(rate.group(1)):.3g}"  # rounded for people
    study = optuna.load_study(study_name="data-mlp", storage=storage_url(workdir))
    # A hopeless trial (learning rate far below the range) must be pruned against the median.
    study.enqueue_trial({"learning_rate": 1e-7, "hidden_size": 8, "epochs": 3})
    tune(cli, workdir, tiny, *common, "--n-trials", "1")

    study = optuna.load_study(study_name="data-mlp", storage=storage_url(workdir))
    states = [trial.state.name for trial in study.trials]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED"]  # resume added to the same study
    parents, trials = study_runs("data-mlp")
    assert len(parents) == 1 and parents.iloc[0]["status"] == "FINISHED"
    parent_id = parents.iloc[0]["run_id"]
    assert len(trials) == 3
    assert set(trials["tags.mlflow.parentRunId"]) == {parent_id}
    for trial in study.trials:  # the link works both ways
        run = mlflow.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.tags["optuna.trial_number"] == str(trial.number)
        assert run.data.params["learning_rate"] == str(trial.params["learning_rate"])
        assert len(mlflow.MlflowClient().get_metric_history(run.info.run_id, "batch_loss")) > 0
    pruned = mlflow.get_run(study.trials[2].user_attrs["mlflow_run_id"])
    assert pruned.info.status == "KILLED"
    assert pruned.data.tags["pipeline.pruned"] == "true"
    assert int(pruned.data.tags["pipeline.pruned_at_epoch"]) < 3
    artifacts = {item.path for item in mlflow.MlflowClient().list_artifacts(parent_id, "study")}
    assert {"study/trials.csv", "study/optimization_history.png"} <= artifacts
    # The table is for people: no per-image record or process identity among its columns
    # (the study keeps both, for the verdict and the workers).
    table = mlflow.artifacts.load_text(f"runs:/{parent_id}/study/trials.csv")
    header = table.splitlines()[0].split(",")
    assert "user_attrs_epochs_trained" in header
    hidden = {"system_attrs_val_correct", "system_attrs_val_correct_other_epochs"}
    assert not (hidden | {"user_attrs_owner"}) & set(header)
    # The models after the epoch counts its curve passed over are kept for the verdict too.
    chosen = study.trials[0].user_attrs["epochs"]
    other = study.trials[0].system_attrs["val_correct_other_epochs"]
    assert set(other) == {"2", "3"} - {str(chosen)}
    assert "owner" in study.trials[0].user_attrs
    # The per-image record is a system attribute: optuna-dashboard's trial page leaves it out.
    assert "val_correct" in study.trials[0].system_attrs
    assert "val_correct" not in study.trials[0].user_attrs
    parent = mlflow.get_run(parent_id)
    assert parent.data.metrics["best_val_accuracy"] == pytest.approx(study.best_value)
    assert parent.data.tags["best.hidden_size"] == str(study.best_params["hidden_size"])
    pruned_at = study.trials[2].user_attrs["pruned_at_epoch"]
    assert (
        f"3 trials, 1 of 3 trials pruned (1 after epoch {pruned_at}); best validation accuracy "
        f"{study.best_value:.4f}" in parent.data.tags["mlflow.note.content"]
    )
    assert parent.data.metrics["pruned_share"] == pytest.approx(1 / 3)
    complete = mlflow.get_run(study.trials[0].user_attrs["mlflow_run_id"])
    assert complete.data.tags["mlflow.note.content"].startswith("Trial 0 of study data-mlp")
    assert complete.info.run_name.startswith("data-mlp-trial-0-")  # then what differs
    # Each run is named for the epochs its value is of: the count chosen, or where it stopped.
    assert f"-ep{study.trials[0].user_attrs['epochs']}-" in complete.info.run_name
    assert f"-ep{pruned_at}-" in pruned.info.run_name, pruned.info.run_name
    # ... and its records say the same: the epochs its value is of, and that value as its
    # latest val_accuracy (logged again at its last epoch's step).
    assert complete.data.params["epochs"] == str(study.trials[0].user_attrs["epochs"])
    assert complete.data.metrics["val_accuracy"] == pytest.approx(study.trials[0].value)
    assert pruned.data.params["epochs"] == str(pruned_at)
    assert pruned.data.metrics["val_accuracy"] == pytest.approx(study.trials[2].value)
    assert pruned.info.run_name.endswith("-pruned")
    assert {i.dataset.name for i in complete.inputs.dataset_inputs} == {
        "mnist-train",
        "mnist-validation",
    }


@pytest.mark.slow
def test_lstm_study(cli, workdir, data_dir, tiny):
    tune(cli, workdir, tiny, "--arch", "lstm", "--n-trials", "3", "--epochs-range", "1", "2")
    study = optuna.load_study(study_name="data-lstm", storage=storage_url(workdir))
    assert len(study.trials) == 3
    parents, trials = study_runs("data-lstm")
    assert len(parents) == 1 and len(trials) == 3
    assert set(trials["params.arch"]) == {"lstm"}
    assert "RUNNING" not in set(trials["status"])


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("--n-trials", "0"), "--n-trials must be at least 1"),
        (("--storage", "optuna.db"), "is not a URL"),
        (("--storage", "nosuchdb://x/y"), "cannot open --storage nosuchdb://x/y"),
        (("--storage", "postgresql://tuner:s3cret@127.0.0.1:9/x"), "cannot open --storage"),
    ],
)
def test_bad_input_creates_nothing(cli, workdir, data_dir, args, fragment):
    result = cli("tune", "--n-trials", "1", *args)
    assert result.exit_code != 0
    message = one_line_error(result)
    assert fragment in message
    assert "s3cret" not in result.stdout + result.stderr
    assert not (workdir / "optuna.db").exists()
    assert len(runs()) == 0


@pytest.mark.slow
def test_a_new_study_starts_with_the_default_preset(cli, workdir, data_dir):
    from pipeline.architectures import REGISTRY

    tune_args = ("--arch", "mlp", "--n-trials", "1", "--validation-fraction", "0.2")
    result = cli("tune", "--storage", storage_url(workdir), *tune_args)
    assert result.exit_code == 0, result.stderr
    study = optuna.load_study(study_name="data-mlp", storage=storage_url(workdir))
    preset = REGISTRY["mlp"].presets["default"]
    # The MLP's learning rate is constant: its epochs come from the curve, not the sampler.
    assert study.trials[0].params == {key: preset[key] for key in study.trials[0].params}
    assert set(study.trials[0].params) == {"learning_rate", "hidden_size"}
    assert study.metric_names == ["val_accuracy"]
    run = mlflow.get_run(study.trials[0].user_attrs["mlflow_run_id"])
    for key in ("learning_rate", "hidden_size", "epochs", "batch_size"):  # the preset trained
        assert run.data.params[key] == str(preset[key]), key


@pytest.mark.slow
def test_a_study_name_reused_for_another_arch_is_refused(cli, workdir, data_dir, tiny):
    tune(
        cli,
        workdir,
        tiny,
        "--arch",
        "mlp",
        "--study-name",
        "shared",
        "--n-trials",
        "1",
        "--epochs-range",
        "1",
        "2",
    )
    before = len(runs())
    result = cli(
        "tune",
        "--storage",
        storage_url(workdir),
        *tiny.tune,
        "--arch",
        "lstm",
        "--study-name",
        "shared",
        "--n-trials",
        "1",
    )
    assert result.exit_code == 1
    assert "study shared tunes mlp, not lstm" in one_line_error(result)
    assert len(runs()) == before
    study = optuna.load_study(study_name="shared", storage=storage_url(workdir))
    assert len(study.trials) == 1


@pytest.mark.slow
def test_wide_search_also_searches_batch_size_and_schedule(cli, workdir, data_dir, tiny):
    from pipeline.architectures import REGISTRY
    from pipeline.config import SCHEDULES
    from pipeline.tune_config import BATCH_SIZES

    preset = REGISTRY["mlp"].presets["default"]
    seeded = tune(
        cli,
        workdir,
        tiny,
        "--arch",
        "mlp",
        "--search",
        "wide",
        "--study-name",
        "seeded",
        "--hidden-size-range",
        "8",
        "512",
        "--n-trials",
        "1",
    )
    assert seeded.exit_code == 0
    study = optuna.load_study(study_name="seeded", storage=storage_url(workdir))
    assert study.trials[0].params == {
        "learning_rate": preset["learning_rate"],
        "hidden_size": preset["hidden_size"],
        "epochs": preset["epochs"],
        "batch_size": preset["batch_size"],
        "learning_rate_schedule": preset.get("learning_rate_schedule", "constant"),
    }

    wide = ("--arch", "mlp", "--search", "wide", "--study-name", "wide", "--pruner", "none")
    tune(cli, workdir, tiny, *wide, "--epochs-range", "1", "2", "--n-trials", "4")
    study = optuna.load_study(study_name="wide", storage=storage_url(workdir))
    assert len(study.trials) == 4
    for trial in study.trials:
        assert trial.params["batch_size"] in BATCH_SIZES
        assert trial.params["learning_rate_schedule"] in SCHEDULES
        params = mlflow.get_run(trial.user_attrs["mlflow_run_id"]).data.params
        assert params["batch_size"] == str(trial.params["batch_size"])
        assert params["learning_rate_schedule"] == trial.params["learning_rate_schedule"]
        # One unit for every trial of a study that searches the schedule: percent of the run.
        epochs = trial.params["epochs"]  # 1 or 2, or 3 once the range widened
        assert set(trial.intermediate_values) == {
            round(100 * k / epochs) for k in range(1, epochs + 1)
        }

    before = len(runs())
    result = cli(
        "tune",
        "--storage",
        storage_url(workdir),
        *tiny.tune,
        "--arch",
        "mlp",
        "--study-name",
        "wide",
        "--n-trials",
        "1",
    )
    assert result.exit_code == 1
    assert "study wide was made with --search wide, not standard" in one_line_error(result)
    assert len(runs()) == before
    assert len(optuna.load_study(study_name="wide", storage=storage_url(workdir)).trials) == 4


@pytest.mark.slow
def test_timeout_counts_from_the_worker_start_across_its_processes(cli, workdir, data_dir, tiny):
    """--timeout: no trial starts after it, and a trial process's start-up (seconds: it
    imports MLflow) counts."""
    result = tune(
        cli,
        workdir,
        tiny,
        "--arch",
        "mlp",
        "--n-trials",
        "3",
        "--trials-per-process",
        "1",
        "--timeout",
        "1",
        "--pruner",
        "none",
        "--epochs-range",
        "1",
        "2",
    )
    assert "0 trials ended" in result.stdout
    study = optuna.load_study(study_name="data-mlp", storage=storage_url(workdir))
    assert [trial.state.name for trial in study.trials] == []
    parents, _ = study_runs("data-mlp")
    assert list(parents["status"]) == ["FINISHED"]


# Run the CLI with a note on stdout when Optuna or MLflow is first imported.
IMPORT_PROBE = """
import sys
class Seen:
    def find_spec(self, name, path=None, target=None):
        if name in ("optuna", "mlflow"):
            print("IMPORTING", name, flush=True)
        return None
sys.meta_path.insert(0, Seen())
from pipeline.cli.app import run
run(sys.argv[1:])
"""


@pytest.mark.slow
def test_a_study_says_what_it_does_from_its_first_moment(workdir, data_dir, tiny):
    """The first line comes before Optuna and MLflow are imported; then the study and its run,
    then the first trial's start, before any trial's result; every line reaches a pipe as it is
    printed."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, "tune", "--storage", storage_url(workdir)]
        + [*tiny.tune, "--n-trials", "2", "--epochs-range", "2", "3", "--pruner", "none"],
        cwd=workdir,
        env=subprocess_env(workdir),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("tune mlp: 2 trials of study data-mlp in sqlite:///"), lines
    assert lines[1].startswith("IMPORTING"), lines
    status = next(i for i, line in enumerate(lines) if line.startswith("study data-mlp created"))
    started = next(i for i, line in enumerate(lines) if "training (up to 3 epochs)" in line)
    finished = [i for i, line in enumerate(lines) if re.match(r"trial +\d .* best ", line)]
    assert status < started < finished[0] and len(finished) == 2, lines
    assert sum("training (up to" in line for line in lines) == 1  # the worker's first only


@pytest.mark.slow
def test_a_study_refuses_data_other_than_its_own(cli, workdir, data_dir, tiny, tmp_path):
    """After `download --source OTHER --force` the study's trials would be scored on other
    validation images: the next worker stops in one line, before any trial."""
    from conftest import one_line_error, write_mnist_folder

    tune(cli, workdir, tiny, "--arch", "mlp", "--n-trials", "1", "--epochs-range", "1", "2")
    other = write_mnist_folder(tmp_path / "other", train=280)
    assert cli("download", "--source", other, "--force").exit_code == 0
    result = cli("tune", "--storage", storage_url(workdir), *tiny.tune, "--arch", "mlp")
    assert result.exit_code == 1
    message = one_line_error(result)
    assert "scores its trials on data of digest" in message and "not this data" in message
    study = optuna.load_study(study_name="data-mlp", storage=storage_url(workdir))
    assert len(study.trials) == 1
