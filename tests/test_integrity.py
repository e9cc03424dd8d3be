"""Nothing lost, nothing false: the cache, secrets, the champion, the reaper, full disks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import runs
from test_download import one_line_error

TRAIN = ("train", "--arch", "mlp", "--epochs", "1", "--max-steps", "3", "--hidden-size", "8",
         "--no-progress")  # fmt: skip


def tamper_labels(data_dir) -> None:
    path = data_dir / "mnist.npz"
    with np.load(path) as stored:
        arrays = dict(stored)
    arrays["test_labels"][:] = 0
    with path.open("wb") as handle:
        np.savez(handle, **arrays)


def truncate(data_dir) -> None:
    path = data_dir / "mnist.npz"
    path.write_bytes(path.read_bytes()[:1000])


@pytest.mark.parametrize("damage", [tamper_labels, truncate])
def test_a_damaged_cache_is_refused_by_every_stage_and_refetched(cli, data_dir, source, damage):
    damage(data_dir)
    result = cli(*TRAIN)
    assert result.exit_code == 1
    message = one_line_error(result)
    assert "mnist.npz" in message and "pipeline download --force" in message, message
    assert len(runs()) == 0  # no train run on damaged data (the fixture logged no download)
    downloaded = cli("download", "--source", source)
    assert downloaded.exit_code == 0, downloaded.stderr
    assert "Verified" not in downloaded.stdout and "Cached" in downloaded.stdout
    assert cli(*TRAIN).exit_code == 0


def trained_runs(cli, count: int) -> list[tuple[float, str]]:
    """(test accuracy, run id) of `count` MLP runs of different quality, worst first."""
    scored = []
    for steps, rate in (("1", "0.0001"), ("3", "0.003"), ("9", "0.01"))[:count]:
        result = cli("train", "--arch", "mlp", "--epochs", "1", "--max-steps", steps,
                     "--learning-rate", rate, "--hidden-size", "8", "--batch-size", "16",
                     "--no-progress")  # fmt: skip
        assert result.exit_code == 0, result.stderr
        run_id = runs().iloc[0]["run_id"]
        assert cli("evaluate", "--run-id", run_id, "--no-register").exit_code == 0
        scored.append((float(runs().set_index("run_id").loc[run_id, "metrics.test_accuracy"]),
                       run_id))  # fmt: skip
    scored.sort()
    assert len({accuracy for accuracy, _ in scored}) == count, scored  # distinct qualities
    return scored


def champion_run() -> str:
    import mlflow

    client = mlflow.MlflowClient()
    return client.get_model_version_by_alias("mnist-mlp", "champion").run_id


def test_the_champion_ends_on_the_best_version_whatever_came_before(cli, data_dir):
    (_, worst), (_, middle), (_, best) = trained_runs(cli, 3)
    assert cli("evaluate", "--run-id", best).exit_code == 0
    assert cli("evaluate", "--run-id", worst).exit_code == 0
    assert champion_run() == best
    import mlflow  # a lost race (or a hand) left the alias on a worse version

    client = mlflow.MlflowClient()
    worst_version = client.search_model_versions(f"run_id = '{worst}'")[0].version
    client.set_registered_model_alias("mnist-mlp", "champion", worst_version)
    result = cli("evaluate", "--run-id", middle)
    assert result.exit_code == 0, result.stderr
    assert champion_run() == best
    assert "does not beat" in result.stdout


def test_concurrent_evaluates_leave_the_best_champion(cli, workdir, data_dir):
    import subprocess
    import sys

    from conftest import subprocess_env

    (_, worse), (_, better) = trained_runs(cli, 2)
    evaluates = [
        subprocess.Popen([sys.executable, "-m", "pipeline", "evaluate", "--run-id", run_id],
                         cwd=workdir, env=subprocess_env(workdir), text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for run_id in (better, worse)
    ]  # fmt: skip
    for process in evaluates:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    assert champion_run() == better
