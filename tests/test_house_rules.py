"""The rules of the house, read from the source (pipeline/__init__.py's map, ../shared/DESIGN.md):
which package may import which library, the layering of the modules, one vocabulary of keys."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "pipeline"

# Lowest layer first: a module imports only from earlier layers, or from its own package.
LAYERS: list[set[str]] = [
    {"__init__", "errors"},
    {"architectures"},
    {"run_names"},
    {"config"},
    {"locks", "interrupts", "provenance", "fast_exit"},
    {"data"},
    {"fetch"},
    {"paired"},
    {"keras_runtime"},
    {"models", "checkpoints", "early_stopping"},
    {"figures"},
    {"tracking"},
    {"callbacks"},
    {"fitting", "train_records"},
    {"training"},
    {"report_tables"},
    {"evaluation", "downloading", "reporting"},
    {"tuning"},
    {"workflow"},
    {"cli"},
    {"__main__"},  # python -m pipeline
]
STANDALONE = "serving"  # the served model's own code: imports no module of the project
# Libraries only one package may import (serving.py, standalone, is the declared exception).
OWNERS = {
    "mlflow": ({"tracking", STANDALONE}),
    "optuna": ({"tuning"}),
    "typer": ({"cli"}),
    "rich": ({"cli"}),
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
    ],
)
def test_the_rules_catch_a_broken_import(module, added, broken):
    """The check itself fails on one added line: each rule can turn red."""
    files = [
        (path, ast.parse(path.read_text() + f"\n{added}\n") if path == PACKAGE / module else tree)
        for path, tree in sources()
    ]
    assert any(broken in line for line in violations(files))


def key_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants (f-string parts included) that spell a tracked key, docstrings aside."""
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
        and node.value.startswith(KEY_PREFIXES + MLFLOW_TAGS)
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
