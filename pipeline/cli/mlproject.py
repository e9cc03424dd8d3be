"""`mlflow run` entry points: MLproject `option=value` words become the CLI's own options.

MLproject parameters are named like the CLI options (`learning-rate` for `--learning-rate`), so
the run that `mlflow run` creates records what was asked for, while the stage records the values
it resolved (`learning_rate`) beside them. An empty value means "not given" (the preset decides);
`true` / `false` pick a flag's on or off form. Options named like a param the stage logs itself
(`epochs`) are not declared, so MLflow passes them as `--epochs 3`, and only when given.

`mlflow run` starts the stage inside the project checkout, so the default folders (data,
checkpoints, reports) would land there: they go to the workspace instead, the folder of a local
SQLite store (where `mlflow run` was started), else ~/.cache/mnist-pipeline.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer.main
from typer.core import TyperGroup

from pipeline import config as cfg
from pipeline.cli.app import app, run

TRUE = {"true", "1", "yes", "on"}
FALSE = {"false", "0", "no", "off"}


def options_of(command_name: str) -> dict:
    """The command's options, keyed by their MLproject parameter name (the option minus --)."""
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)  # an app of several commands
    command = group.commands[command_name]
    return {param.opts[0].lstrip("-"): param for param in command.params}


def pairs(words: list[str]) -> list[tuple[str, str, str]]:
    """(name, separator, value) of `name=value` words and of the `--name value` pairs MLflow
    appends for parameters the MLproject does not declare."""
    found, rest = [], list(words)
    while rest:
        word = rest.pop(0)
        if word.startswith("--") and rest:
            found.append((word[2:], "=", rest.pop(0)))
        else:
            found.append(word.partition("="))
    return found


def cli_args(command_name: str, words: list[str]) -> list[str]:
    """Translate `name=value` words (and `--name value` pairs) into the command's CLI arguments."""
    options, args = options_of(command_name), [command_name]
    for name, separator, value in pairs(words):
        if not separator or name not in options:
            raise SystemExit(f"Error: {command_name} has no parameter {name!r}")
        option, value = options[name], value.strip()
        if value == "":
            continue
        if option.is_flag:
            if value.lower() not in TRUE | FALSE:
                raise SystemExit(f"Error: {name} must be true or false (got {value!r})")
            on = value.lower() in TRUE
            flag = option.opts[0] if on else (option.secondary_opts or [None])[0]
            args += [flag] if flag else []
        elif getattr(option, "multiple", False):  # --mirror A --mirror B
            for part in value.split():
                args += [option.opts[0], part]
        elif option.nargs > 1:  # --epochs-range LOW HIGH
            args += [option.opts[0], *value.split()]
        else:
            args += [option.opts[0], value]
    return args


# Folder options and their defaults, relative to the workspace under `mlflow run`.
FOLDERS = {
    "--data-dir": cfg.DEFAULT_DATA_DIR,
    "--checkpoint-dir": cfg.DEFAULT_CHECKPOINT_DIR,
    "--report-dir": cfg.DEFAULT_REPORT_DIR,
    "--output-dir": cfg.DEFAULT_REPORT_DIR,
}


def workspace(tracking_uri: str) -> Path:
    """Beside a local SQLite store, else the user's cache: never the project checkout."""
    if tracking_uri.startswith("sqlite:///"):
        store = Path(tracking_uri[len("sqlite:///") :])
        if store.is_absolute():
            return store.parent
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "mnist-pipeline"


def with_workspace(args: list[str], folder: Path) -> list[str]:
    """args plus each of the command's folder options not given, inside folder."""
    options = {opt for param in options_of(args[0]).values() for opt in param.opts}
    missing = [name for name in FOLDERS if name in options and name not in args]
    return args + [part for name in missing for part in (name, str(folder / FOLDERS[name]))]


if __name__ == "__main__":
    args = cli_args(sys.argv[1], sys.argv[2:])
    run(with_workspace(args, workspace(cfg.tracking_uri())))
