"""Rich progress displays shared by the stages (on stderr, so stdout keeps the summaries)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

stderr = Console(stderr=True)


@contextlib.contextmanager
def byte_progress() -> Iterator:
    """A callback (label, done, total, unit) that drives one bar per label."""
    bars = Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TextColumn("{task.fields[amount]:>20}"),
        TimeRemainingColumn(),
        console=stderr,
        transient=False,
    )
    tasks: dict[str, int] = {}

    def update(label: str, done: int, total: int | None, unit: str = "bytes") -> None:
        if unit == "bytes":
            amount = decimal(done) + (f" / {decimal(total)}" if total else "")
        else:
            amount = f"{done}/{total} {unit}"
        if label not in tasks:
            tasks[label] = bars.add_task(label, total=total, amount=amount)
        bars.update(tasks[label], completed=done, total=total, amount=amount)

    with bars:
        yield update
