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
    # The output says the alias moved, from the hand-set version to the best-tested one.
    best_version = client.search_model_versions(f"run_id = '{best}'")[0].version
    moved = f"the champion alias moves from v{worst_version} to v{best_version}"
    assert moved in result.stdout, result.stdout


@pytest.mark.slow
def test_concurrent_evaluates_leave_the_best_champion(cli, workdir, data_dir):
    """Two evaluates at once: the alias ends on the better, and neither says what did not
    happen (the one that lost the race is not "the first champion")."""
    from conftest import PIPELINE, start

    (_, worse), (_, better) = trained_runs(cli, 2)
    evaluates = [
        start(workdir, *PIPELINE, "evaluate", "--run-id", run_id) for run_id in (better, worse)
    ]
    outputs = []
    for process in evaluates:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
        outputs.append(stdout)
    assert champion_run() == better
    claims = [line for out in outputs for line in out.splitlines() if "registry:" in line]
    firsts = [line.split()[2] for line in claims if "is the first champion" in line]
    assert len(firsts) <= 1, claims  # the loser of the race does not claim it too
    for first in firsts:  # a first champion that did not stay was beaten, and it says so
        beaten = any(f"beats champion {first} " in line for line in claims)
        assert beaten or all("does not beat" in line for line in claims if first not in line)


@pytest.mark.slow
def test_the_gate_compares_only_models_tested_on_the_same_images(cli, data_dir, tmp_path):
    """After `download --source OTHER --force` (other test images), the champion's own model
    evaluated again does not "beat" it: the two were scored on different images."""
    import mlflow
    from conftest import write_mnist_folder

    ((_, run_id),) = trained_runs(cli, 1)
    assert cli("evaluate", "--run-id", run_id).exit_code == 0
    other = write_mnist_folder(tmp_path / "other", test=90)
    assert cli("download", "--source", other, "--force").exit_code == 0
    result = cli("evaluate", "--run-id", run_id)
    assert result.exit_code == 0, result.stderr
    assert "was tested on other images than champion v1: not compared" in result.stdout
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("mnist-mlp", "champion").version) == "1"
    versions = client.search_model_versions("name = 'mnist-mlp'")
    assert len({version.tags["test_set_digest"] for version in versions}) == 2
