"""The rules of the house, read from the source (pipeline/__init__.py's map, ../shared/DESIGN.md):
which package may import which library, the layering of the modules, one vocabulary of keys."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "pipeline"


def layers() -> list[set[str]]:
    """The layering, lowest first, as pipeline/__init__.py's map states it: each line that
    starts a map entry names one layer's modules (a package with a trailing /), and the
    package's own __init__ shares the lowest layer."""
    doc = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text())) or ""
    entries = doc.split("\n\n")[2].splitlines()  # the title, the intro, then the map
    found = [
        {name.strip().rstrip("/") for name in line.split("  ")[0].split(",")}
        for line in entries
        if line and not line[0].isspace()
    ]
    found[0].add("__init__")
    return found


LAYERS = layers()
STANDALONE = "serving"  # the served model's own code: imports no module of the project
# Libraries only one package may import (serving.py, standalone, is the declared exception).
OWNERS = {
    "mlflow": ({"tracking", STANDALONE}),
    "optuna": ({"tuning"}),
    "typer": ({"cli"}),
    "rich": ({"cli"}),
    "keras": ({"keras_runtime", STANDALONE}),
    "tensorflow": ({"keras_runtime", STANDALONE}),
}
# Tag prefixes only tracking/names.py spells (plus MLflow's own tags it names).
KEY_PREFIXES = ("pipeline.", "optuna.", "best.")
MLFLOW_TAGS = ("mlflow.note.", "mlflow.source.", "mlflow.parentRunId")


def unit(path: Path) -> str:
    """The layering unit of a source file: its package (tracking, tuning, cli) or module."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, those inside functions included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
            if node.module == "pipeline":  # from pipeline import data, tracking, __version__
                found += [
                    (node.lineno, f"pipeline.{submodule(alias.name)}") for alias in node.names
                ]
    return found


def submodule(name: str) -> str:
    """name, when it is a module of the package; else __init__ (which defines it)."""
    exists = (PACKAGE / f"{name}.py").is_file() or (PACKAGE / name).is_dir()
    return name if exists else "__init__"


def sources() -> list[tuple[Path, ast.AST]]:
    return [(path, ast.parse(path.read_text())) for path in sorted(PACKAGE.rglob("*.py"))]


def layer_of(name: str) -> int:
    return next(index for index, layer in enumerate(LAYERS) if name in layer)


def violations(files: list[tuple[Path, ast.AST]]) -> list[str]:
    """Every import that breaks a rule, as 'file:line: why'."""
    found = []
    for path, tree in files:
        here = unit(path)
        where = path.relative_to(REPO)
        for line, module in imports(tree):
            top, *rest = module.split(".")
            owners = OWNERS.get(top)
            if owners is not None and here not in owners:
                found.append(f"{where}:{line}: {top} is imported only in {sorted(owners)}")
            if top != "pipeline" or not rest or module == "pipeline":
                continue
            target = rest[0]
            if here == STANDALONE:
                found.append(f"{where}:{line}: serving.py must not import the project")
            elif target == "cli" and here not in ("cli", "__main__"):
                found.append(f"{where}:{line}: nothing imports the CLI")
            elif target != here and layer_of(target) >= layer_of(here):
                found.append(f"{where}:{line}: {here} may not import {target} (layering)")
    return found


def test_every_module_has_a_place_in_the_layering():
    units = {unit(path) for path in PACKAGE.rglob("*.py")}
    placed = set().union(*LAYERS) | {STANDALONE}
    assert units == placed, (units - placed, placed - units)


def test_imports_keep_the_house_rules():
    assert violations(sources()) == []


@pytest.mark.parametrize(
    ("module", "added", "broken"),
    [
        ("data.py", "import mlflow", "mlflow is imported only in"),
        ("figures.py", "import optuna", "optuna is imported only in"),
        ("training.py", "from pipeline.cli import console", "nothing imports the CLI"),
        ("data.py", "from pipeline import training", "data may not import training"),
        ("serving.py", "from pipeline import errors", "serving.py must not import the project"),
        ("tracking/runs.py", "import typer", "typer is imported only in"),
        ("tracking/logged_models.py", "import keras", "keras is imported only in"),
        ("models.py", "import tensorflow as tf", "tensorflow is imported only in"),
    ],
)
def test_the_rules_catch_a_broken_import(module, added, broken):
    """The check itself fails on one added line: each rule can turn red."""
    files = [
        (path, ast.parse(path.read_text() + f"\n{added}\n") if path == PACKAGE / module else tree)
        for path, tree in sources()
    ]
    assert any(broken in line for line in violations(files))


def strings(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, value) of every string constant (f-string parts included), docstrings aside."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def key_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants that spell a tracked key by its prefix."""
    return [
        (line, value)
        for line, value in strings(tree)
        if value.startswith(KEY_PREFIXES + MLFLOW_TAGS)
    ]


def test_tracked_keys_are_spelled_only_in_the_names_module():
    names_module = PACKAGE / "tracking" / "names.py"
    spelled = [
        f"{path.relative_to(REPO)}:{line}: {value!r}"
        for path, tree in sources()
        if path not in (names_module, PACKAGE / "serving.py")
        for line, value in key_literals(tree)
    ]
    assert spelled == []
    assert key_literals(ast.parse('tags = {f"pipeline.step.{name}": 1}')), "the check can fail"


def named_values() -> dict[str, str]:
    """Every key names.py defines (metric, param, tag, dataset, Optuna attribute), by value;
    less the config dataclasses' field names, which those define (a param is a field)."""
    from pipeline.config import TrainConfig
    from pipeline.tracking import names
    from pipeline.tune_config import TuneConfig

    fields = {
        each.name for config in (TrainConfig, TuneConfig) for each in dataclasses.fields(config)
    }
    return {
        value: key
        for key, value in vars(names).items()
        if key.isupper() and isinstance(value, str) and value not in fields
    }


def spelled_keys(files: list[tuple[Path, ast.AST]]) -> list[str]:
    """Literals equal to a key names.py defines, in the modules that may import it (tracking's
    layer and above). Below it (data, fetch) the same words are other vocabularies (a cache
    manifest's keys); cli/ reads only Keras' own log names and never imports MLflow to start."""
    values = named_values()
    tracking_layer = layer_of("tracking")
    return [
        f"{path.relative_to(REPO)}:{line}: {value!r} is names.{values[value]}"
        for path, tree in files
        if unit(path) not in ("cli", STANDALONE)
        and layer_of(unit(path)) >= tracking_layer
        and path != PACKAGE / "tracking" / "names.py"
        for line, value in strings(tree)
        if value in values
    ]


def test_every_key_is_spelled_once_by_value_too():
    assert spelled_keys(sources()) == []
    broken = [
        (path, ast.parse(path.read_text() + '\nx = {"test_accuracy": 1}\n'))
        if path == PACKAGE / "evaluation.py"
        else (path, tree)
        for path, tree in sources()
    ]
    assert any("names.TEST_ACCURACY" in line for line in spelled_keys(broken))
    broken = [
        (path, ast.parse(path.read_text() + '\nx = trial.system_attrs["val_correct"]\n'))
        if path == PACKAGE / "tuning" / "verdict.py"
        else (path, tree)
        for path, tree in sources()
    ]
    assert any("names.VAL_CORRECT_ATTR" in line for line in spelled_keys(broken))


MAX_FILE_LINES = 300  # DESIGN: split a file when it passes about 300 lines
MAX_FUNCTION_LINES = 60  # and keep functions under about 60 (their bodies, docstring aside)


def oversized(files: list[tuple[Path, ast.AST]]) -> list[str]:
    found = []
    for path, tree in files:
        where = path.relative_to(REPO)
        lines = len(path.read_text().splitlines()) if path.exists() else 0
        lines = max(
            lines, max((getattr(node, "end_lineno", 0) or 0 for node in ast.walk(tree)), default=0)
        )
        if lines > MAX_FILE_LINES:
            found.append(f"{where}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                body = node.body[1:] if ast.get_docstring(node) else node.body
                if body:
                    length = body[-1].end_lineno - body[0].lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        found.append(f"{where}:{node.lineno}: {node.name} is {length} lines")
    return found


def test_files_and_functions_stay_small():
    assert oversized(sources()) == []
    long_function = "def f():\n" + "    x = 1\n" * (MAX_FUNCTION_LINES + 1)
    assert oversized([(PACKAGE / "data.py", ast.parse(long_function))])


MEASURED = re.compile(r"\b\d+(\.\d+)?(-\d+(\.\d+)?)? (ms|s|MB|GB)\b|\(measured|correlation of \d")


def measurements(files: list[tuple[Path, str]]) -> list[str]:
    """Comments and docstrings that state a measured time or size: they go stale (DESIGN: the
    figures belong in bench/ output and notes; a comment may name the bench)."""
    found = []
    for path, text in files:
        tree = ast.parse(text)
        docs = [
            ast.get_docstring(node, clean=False) or ""
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        comments = [
            line.split("#", 1)[1]
            for line in text.splitlines()
            if "#" in line and line.strip().startswith("#") or "  # " in line
        ]
        for words in docs + comments:
            match = MEASURED.search(words)
            if match:
                found.append(
                    f"{path.relative_to(REPO)}: {match.group(0)!r} in {words.strip()[:70]!r}"
                )
    return found


def test_comments_state_no_measurements():
    files = [(path, path.read_text()) for path in sorted(PACKAGE.rglob("*.py"))]
    assert measurements(files) == []
    assert measurements([(PACKAGE / "data.py", "x = 1  # 20 ms on this machine\n")])
