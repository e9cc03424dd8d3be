"""MLproject and conda.yaml stay in step with the CLI and pyproject.toml."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from pipeline.cli.mlproject import cli_args, options_of
from pipeline.config import train_config

ENTRY_POINTS = {"main", "download", "train", "evaluate", "tune", "report"}


def mlproject() -> dict:
    return yaml.safe_load((REPO / "MLproject").read_text())


# What the stage logs as params itself: an MLproject parameter of the same name would be logged
# by `mlflow run` first ('' when not given) and the stage's true value then refused.
STAGE_PARAMS = {
    "train": set(train_config("mlp").params()) | {"max_steps"},
    "download": {"source", "official"},
}


def test_mlproject_entry_points_mirror_the_cli():
    entries = mlproject()["entry_points"]
    assert set(entries) == ENTRY_POINTS
    for name, entry in entries.items():
        options = options_of(name)
        logged = STAGE_PARAMS.get(name, set())
        assert not set(entry["parameters"]) & logged, name
        assert set(entry["parameters"]) == set(options) - logged, name
        for parameter, spec in entry["parameters"].items():
            # Empty means "not given": the pipeline's own defaults decide, written once.
            assert spec["default"] == "", (name, parameter)
            assert spec["type"] == "string", (name, parameter)  # the CLI parses the value
            assert f"{parameter}={{{parameter}}}" in entry["command"], (name, parameter)
        assert entry["command"].startswith(f"python -m pipeline.cli.mlproject {name} ")


def test_mlproject_words_become_cli_options():
    words = ["learning-rate=", "progress=false", "--arch", "mlp", "--epochs", "3", "--seed", "0"]
    assert cli_args("train", words) == [
        "train",
        "--no-progress",
        "--arch",
        "mlp",
        "--epochs",
        "3",
        "--seed",
        "0",
    ]
    assert cli_args("tune", ["epochs-range=2 5", "retrain-best=true", "timeout="]) == [
        "tune",
        "--epochs-range",
        "2",
        "5",
        "--retrain-best",
    ]
    assert cli_args("download", ["mirror=http://a/ http://b/", "force=false"]) == [
        "download",
        "--mirror",
        "http://a/",
        "--mirror",
        "http://b/",
        "--no-force",  # a flag's off form, as given
    ]
    with pytest.raises(SystemExit, match="no parameter 'speed'"):
        cli_args("train", ["speed=9"])
    with pytest.raises(SystemExit, match="true or false"):
        cli_args("evaluate", ["register=maybe"])


def conda_pins() -> dict[str, str]:
    environment = yaml.safe_load((REPO / "conda.yaml").read_text())
    pins = {}
    for entry in environment["dependencies"]:
        if isinstance(entry, dict):
            for line in entry["pip"]:
                name, version = line.split("==")
                pins[name.lower()] = version
        else:
            name, version = entry.split("=")
            pins[name.lower()] = version
    return pins


def test_conda_pins_match_pyproject_and_what_is_installed():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = conda_pins()
    assert SpecifierSet(project["requires-python"]).contains(pins["python"])
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = requirement.name.lower()
        assert name in pins, f"{name} is not pinned in conda.yaml"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} vs {line}"
        assert importlib.metadata.version(name) == pins[name], f"installed {name} differs"
    runtime = {Requirement(line).name.lower() for line in project["dependencies"]}
    assert set(pins) - {"python", "pip"} == runtime


def test_mlflow_run_folders_default_to_the_workspace_not_the_checkout(monkeypatch, tmp_path):
    from pipeline.cli.mlproject import with_workspace, workspace

    assert workspace("sqlite:////srv/runs/mlflow.db") == Path("/srv/runs")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert workspace("http://127.0.0.1:5000") == tmp_path / "mnist-pipeline"
    assert workspace("sqlite:///mlflow.db") == tmp_path / "mnist-pipeline"  # relative: checkout
    args = with_workspace(cli_args("train", ["data-dir=/d"]), Path("/w"))
    assert args[args.index("--data-dir") + 1] == "/d"  # given: kept
    assert args[args.index("--checkpoint-dir") + 1] == "/w/checkpoints"
    args = with_workspace(cli_args("main", []), Path("/w"))
    assert args[1:] == [
        "--data-dir",
        "/w/data/mnist",
        "--checkpoint-dir",
        "/w/checkpoints",
        "--report-dir",
        "/w/reports",
    ]
    assert with_workspace(["report"], Path("/w")) == ["report", "--output-dir", "/w/reports"]


def test_every_package_folder_ships_in_the_distribution():
    """A `pip install .` (not editable) holds every subpackage: tracking/ and tuning/ too."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = setuptools["packages"]
    inits = REPO.glob("pipeline/**/__init__.py")
    folders = {".".join(init.parent.relative_to(REPO).parts) for init in inits}
    assert {"pipeline", "pipeline.tracking", "pipeline.tuning"} <= folders
    if isinstance(packages, list):
        shipped = set(packages)
    else:
        patterns = packages["find"]["include"]
        shipped = {name for name in folders if any(fnmatch.fnmatch(name, p) for p in patterns)}
    assert folders <= shipped


def test_make_test_without_the_real_data_stops_at_once_saying_how_to_point_at_it(tmp_path):
    import subprocess

    def real_data(**env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["make", "-s", "real-data"],
            cwd=REPO,
            env={"PATH": "/usr/bin:/bin", **env},
            capture_output=True,
            text=True,
        )

    missing = real_data(MNIST_LOCAL_SOURCE=str(tmp_path))
    assert missing.returncode != 0
    assert f"no MNIST IDX files in {tmp_path}" in missing.stderr.splitlines()[0]
    assert "SKIP_REAL_DATA=1" in missing.stderr
    assert real_data(MNIST_LOCAL_SOURCE=str(tmp_path), SKIP_REAL_DATA="1").returncode == 0
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    assert real_data(MNIST_LOCAL_SOURCE=str(tmp_path)).returncode == 0
