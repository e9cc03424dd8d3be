"""The README tells the truth: its preset table and option lists are the code's."""

from __future__ import annotations

import re

from conftest import REPO

from pipeline import architectures


def readme() -> str:
    return (REPO / "README.md").read_text()


def preset_facts(arch: str, values: dict) -> list[str]:
    """What the README's preset table must say of one preset (the code is the truth)."""
    rate = f"{values['learning_rate']:.0e}".replace("e-0", "e-")
    size = values["hidden_size"]
    facts = [f"{size}-{size} ReLU" if arch == "mlp" else f"LSTM {size}", f"Adam({rate}"]
    facts.append(f"batch {values['batch_size']}")
    if values.get("max_steps"):
        facts.append(f"{values['max_steps']:,} steps".replace(",", " "))
    else:
        facts.append(f"{values['epochs']} epochs")
    if values.get("learning_rate_schedule") == "cosine":
        facts.append("cosine decay")
    return facts


def test_readme_preset_table_is_the_code():
    text = readme()
    for preset in architectures.preset_names():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{preset}`"))
        cells = [cell.strip() for cell in row.strip("|").split("|")][1:]
        assert len(cells) == len(architectures.names())
        for arch, cell in zip(architectures.names(), cells, strict=True):
            values = architectures.REGISTRY[arch].presets[preset]
            for fact in preset_facts(arch, values):
                assert fact in cell, (preset, arch, fact, cell)
            assert ("cosine" in cell) == (values.get("learning_rate_schedule") == "cosine")


def test_readme_names_every_option_of_every_stage():
    import typer.main

    from pipeline.cli.app import app

    text = readme()
    for name, command in typer.main.get_command(app).commands.items():
        for param in command.params:
            for option in param.opts:
                if option != "--help":
                    assert f"`{option}" in text or f"{option} " in text, (name, option)


def test_readme_quickstart_is_what_ci_runs():
    text = readme()
    ci = (REPO / ".ci" / "run").read_text()
    commands = re.findall(r"^make (\w+)", text, flags=re.M)
    assert commands[:2] == ["run", "test"]
    assert "make test" in ci


def test_readme_states_how_many_trials_a_process_runs():
    from pipeline.config import TRIALS_PER_PROCESS

    text = readme()
    assert f"{TRIALS_PER_PROCESS} at a time (`--trials-per-process`)" in text


def test_every_bench_the_docs_name_exists_and_measurements_live_in_docs():
    measurements = (REPO / "docs" / "measurements.md").read_text()
    text = readme()
    assert "docs/measurements.md" in text
    for document in (text, measurements):
        for bench in set(re.findall(r"bench/(\w+\.py)", document)):
            assert (REPO / "bench" / bench).is_file(), bench
    # Each section of measurements names the command that printed them.
    for section in measurements.split("\n## ")[1:]:
        assert re.search(r"`(python bench/\w+\.py|pipeline \w+|make [\w-]+)", section), section[
            :60
        ]


def test_the_reference_report_is_todays_with_a_verdict_per_study():
    """docs/reference-report/ is what bench/make_report.py writes now: gain columns, a verdict
    in words for every study, no machine's folder, and no "tuned best" row that is a preset."""
    report = (REPO / "docs" / "reference-report" / "report.md").read_text()
    assert "| test_gain |" in report and "| val_gain |" in report
    studies = re.findall(r"^\| (mnist-\w+) \| \w+ \| \d+ \|", report, flags=re.M)
    assert studies, "no study in the reference report"
    for study in studies:
        assert re.search(rf"^- {study}: .*(beats|beat trial 0|within noise|worse)", report, re.M)
    # No machine's folder: no absolute path anywhere in it.
    assert not re.search(r"(^|[\s`(\[])/[\w.-]+/", report, flags=re.M), "an absolute path"
    assert "tuned best" not in report or "beats" in report
    assert (REPO / "docs" / "reference-report" / "learning_curves.png").stat().st_size > 0


def test_tune_help_states_the_budget_the_readme_does():
    """`tune --help` says what a study costs to reach its verdict, in the README's words."""
    from pipeline.cli import tune_command

    doc = " ".join((tune_command.tune.__doc__ or "").split())
    assert "Budget:" in doc
    budget = doc[doc.index("Budget:") :]
    assert budget in " ".join(readme().split())
