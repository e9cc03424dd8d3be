"""The model registry: the champion alias always ends on the best-tested version."""

from __future__ import annotations

import pytest
from conftest import runs


def trained_runs(cli, count: int) -> list[tuple[float, str]]:
    """(test accuracy, run id) of `count` MLP runs of different quality, worst first."""
    scored = []
    for steps, rate in (("1", "0.0001"), ("3", "0.003"), ("9", "0.01"))[:count]:
        result = cli(
            "train",
            "--arch",
            "mlp",
            "--epochs",
            "1",
            "--max-steps",
            steps,
            "--learning-rate",
            rate,
            "--hidden-size",
            "8",
            "--batch-size",
            "16",
            "--no-progress",
        )
        assert result.exit_code == 0, result.stderr
        run_id = runs().iloc[0]["run_id"]
        assert cli("evaluate", "--run-id", run_id, "--no-register").exit_code == 0
        scored.append(
            (float(runs().set_index("run_id").loc[run_id, "metrics.test_accuracy"]), run_id)
        )
    scored.sort()
    assert len({accuracy for accuracy, _ in scored}) == count, scored  # distinct qualities
    return scored


def champion_run() -> str:
    import mlflow

    client = mlflow.MlflowClient()
    return client.get_model_version_by_alias("mnist-mlp", "champion").run_id


@pytest.mark.slow
def test_the_champion_ends_on_the_best_version_whatever_came_before(cli, data_dir):
    (_, worst), (_, middle), (_, best) = trained_runs(cli, 3)
    assert cli("evaluate", "--run-id", best).exit_code == 0
    assert cli("evaluate", "--run-id", worst).exit_code == 0
    assert champion_run() == best
    import mlflow  # a lost race (or a hand) left the alias on a worse version

    client = mlflow.MlflowClient()
    worst_version = client.search_model_versions(f"run_id = '{worst}'")[0].version
    client.set_registered_model_alias("mnist-mlp", "champion", worst_version)
    client.delete_model_version_tag("mnist-mlp", worst_version, "test_accuracy")  # and untagged
    result = cli("evaluate", "--run-id", middle)
    assert result.exit_code == 0, result.stderr
    assert champion_run() == best
    assert "does not beat champion" in result.stdout and "(untested)" in result.stdout


@pytest.mark.slow
def test_concurrent_evaluates_leave_the_best_champion(cli, workdir, data_dir):
    import subprocess
    import sys

    from conftest import subprocess_env

    (_, worse), (_, better) = trained_runs(cli, 2)
    evaluates = [
        subprocess.Popen(
            [sys.executable, "-m", "pipeline", "evaluate", "--run-id", run_id],
            cwd=workdir,
            env=subprocess_env(workdir),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for run_id in (better, worse)
    ]
    for process in evaluates:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    assert champion_run() == better
