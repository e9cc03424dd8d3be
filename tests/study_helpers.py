"""Helpers of the tests that run studies: their storage, a tune that must succeed, their runs."""

from __future__ import annotations

from conftest import runs


def storage_url(workdir) -> str:
    return f"sqlite:///{workdir / 'optuna.db'}"


def tune(cli, workdir, tiny, *args: str):
    result = cli("tune", "--storage", storage_url(workdir), *tiny.tune, *args)
    assert result.exit_code == 0, result.stderr
    return result


def study_runs(study_name: str):
    frame = runs()
    trials = frame[frame["tags.pipeline.stage"] == "trial"]
    parents = frame[frame["tags.pipeline.stage"] == "tune"]
    return parents[parents["tags.pipeline.study"] == study_name], trials[
        trials["tags.pipeline.study"] == study_name
    ]
