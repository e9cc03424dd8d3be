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


class _EpochBars:
    """Keras callback (async-safe) drawing a live bar for the current epoch."""

    def __new__(cls, bars: Progress, steps: int, epochs: int):
        from pipeline.backend import keras

        class EpochBars(keras.callbacks.Callback):
            async_safe = True

            def on_epoch_begin(self, epoch, logs=None):
                self.task = bars.add_task(
                    f"epoch {epoch + 1}/{epochs}", total=steps, amount="", visible=True
                )

            def on_train_batch_end(self, batch, logs=None):
                if batch % 10 == 0 or batch + 1 == steps:
                    amount = f"loss {logs['loss']:.4f} acc {float(logs['accuracy']):.4f}"
                    bars.update(self.task, completed=batch + 1, amount=amount)

            def on_epoch_end(self, epoch, logs=None):
                bars.remove_task(self.task)
                values = "  ".join(f"{key} {float(value):.4f}" for key, value in logs.items())
                bars.console.print(f"epoch {epoch + 1}/{epochs}  {values}")

        return EpochBars()


@contextlib.contextmanager
def epoch_progress(enabled: bool, steps: int, epochs: int) -> Iterator[list]:
    """A list holding the epoch-bar callback (empty when disabled), live while the block runs."""
    if not enabled:
        yield []
        return
    bars = Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TextColumn("{task.fields[amount]}"),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
    )
    with bars:
        yield [_EpochBars(bars, steps, epochs)]
