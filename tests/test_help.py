"""What `--help` tells a newcomer: every option's full name at 80 columns, every default, one
default architecture for every stage."""

from __future__ import annotations

import re

import pytest
import typer.main

from pipeline import config as cfg
from pipeline.cli.app import app
from pipeline.config import train_config
from pipeline.tune_config import MainConfig, TuneConfig

COMMANDS = typer.main.get_command(app).commands  # type: ignore[attr-defined]


def entries(help_text: str) -> dict[str, str]:
    """Each option's entry in a help text (its wrapped lines joined), keyed by its first name."""
    found: dict[str, str] = {}
    current = None
    for line in help_text.split("Options:", 1)[1].splitlines():
        if line.startswith("  -"):
            current = line.split()[0]
            found[current] = line
        elif current and line.strip():
            found[current] += " " + line.strip()
    return found


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_at_80_columns_names_every_option_in_full(cli, monkeypatch, name):
    monkeypatch.setenv("COLUMNS", "80")
    result = cli(name, "--help")
    assert result.exit_code == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    for param in COMMANDS[name].params:
        for option in (*param.opts, *param.secondary_opts):
            assert re.search(rf"(^|[\s/]){re.escape(option)}(\s|$)", result.stdout, re.M), option


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_says_its_default(cli, name):
    shown = entries(cli(name, "--help").stdout)
    assert set(shown) >= {param.opts[0] for param in COMMANDS[name].params}
    missing = [option for option, text in shown.items() if option != "--help"]
    missing = [option for option in missing if "default" not in shown[option]]
    assert missing == [], shown


def test_train_tune_and_main_share_one_default_architecture(cli):
    assert train_config().arch == TuneConfig().arch == MainConfig().arch == cfg.DEFAULT_ARCH
    for name in ("train", "tune", "main"):
        arch = entries(cli(name, "--help").stdout)["--arch"]
        assert f"(default: {cfg.DEFAULT_ARCH})" in arch, (name, arch)


def test_help_lists_every_stage(cli):
    result = cli("--help")
    assert result.exit_code == 0
    listed = re.findall(r"^  (\S+)  ", result.stdout.split("Commands:", 1)[1], re.M)
    assert listed == list(COMMANDS), listed
    assert "Fetch, verify and cache" in result.stdout


CONFIGS = {"tune": TuneConfig, "main": MainConfig, "train": None}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_defaults_help_states_are_the_configs(cli, name):
    """A help text's "(default: X)" for a config field is that field's default, read from the
    code, not restated by hand (train's fields default to the preset's or to TrainConfig's)."""
    shown = entries(cli(name, "--help").stdout)
    config = CONFIGS[name]
    checked = 0
    for param in COMMANDS[name].params:
        text = " ".join(shown[param.opts[0]].split())
        if config is None:
            if param.name not in ("seed", "validation_fraction"):
                continue  # the preset's, or a stage option
            value = getattr(train_config(), param.name)
        elif param.name in config.__dataclass_fields__:
            value = getattr(config(), param.name)
        else:
            continue
        if value is None or isinstance(value, bool):
            continue  # said in words (no limit), or by Click itself ([default: no-tune])
        assert f"(default: {value})" in text, (name, param.opts[0], text, value)
        checked += 1
    assert checked >= 2
