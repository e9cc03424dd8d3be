"""The architecture registry: a new architecture is one entry; every one has the same presets."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import runs, subprocess_env

from pipeline import architectures

NEW_ARCH = """
import dataclasses, sys
from pipeline import architectures
entry = architectures.REGISTRY["mlp"]
architectures.REGISTRY["wide"] = dataclasses.replace(
    entry, name="wide", registered_model="mnist-wide", notebook_accuracy=0.5)
from pipeline.cli.app import main
main(sys.argv[1:])
"""


@pytest.mark.slow
def test_a_new_architecture_is_one_registry_entry(workdir, data_dir, tiny):
    """Add an entry in a child process: help, train, evaluate and report pick it up."""

    def pipeline(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", NEW_ARCH, *args],
            cwd=workdir,
            env=subprocess_env(workdir),
            capture_output=True,
            text=True,
            timeout=600,
        )

    assert "wide" in re.sub(r"\s+", " ", pipeline("train", "--help").stdout)
    trained = pipeline("train", "--arch", "wide", "--epochs", "1", *tiny.model)
    assert trained.returncode == 0, trained.stderr
    run_id = runs().iloc[0]["run_id"]
    evaluated = pipeline("evaluate", "--run-id", run_id)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "mnist-wide" in evaluated.stdout
    reported = pipeline("report", "--output-dir", str(workdir / "out"))
    assert reported.returncode == 0, reported.stderr
    assert "| wide | default preset |" in (workdir / "out" / "report.md").read_text()


def test_every_architecture_has_the_same_presets():
    for entry in architectures.REGISTRY.values():
        assert tuple(entry.presets) == architectures.preset_names(), entry.name
