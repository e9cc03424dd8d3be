"""SIGINT / SIGTERM: raise in the main thread, or, while training, stop after the current batch.

No tracking here: the run context (tracking.run) turns an `Interrupted` into a KILLED run.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread for SIGTERM as for Ctrl-C, so both end a run KILLED."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signal_number).name}")
        self.signal_number = signal_number


def _ignore_further() -> None:
    """After the first stop signal the process is ending: repeats are ignored from now on, so
    that every run it has open (a trial and its study, say) gets its end state written."""
    for number in SIGNALS:
        signal.signal(number, signal.SIG_IGN)


def _raise_once(signal_number: int, _frame=None) -> None:
    _ignore_further()
    raise Interrupted(signal_number)


@contextlib.contextmanager
def _handled_by(handler) -> Iterator[None]:
    previous = {number: signal.signal(number, handler) for number in SIGNALS}
    try:
        yield
    finally:
        for number, action in previous.items():
            # Ignoring means a stop is under way (our handlers never ignore): keep ignoring.
            if signal.getsignal(number) is not signal.SIG_IGN:
                signal.signal(number, action)


@contextlib.contextmanager
def raising() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT raise `Interrupted`."""
    with _handled_by(_raise_once):
        yield


class GracefulStop:
    """While active, the first SIGTERM / SIGINT calls hook (say, stop Keras after this batch)
    instead of raising at an arbitrary point inside TensorFlow. Further signals are ignored
    while it stops: an exception raised inside TensorFlow's Python layer could leave its native
    state torn and crash the process at exit (seen: munmap_chunk, SIGABRT), losing the run's
    end state; stopping takes one batch and the epoch's validation pass.

    `pending` is the signal number of a stop under way; `raise_if_pending()` turns it into
    `Interrupted` once the caller is back in its own code. `end_epoch()` fixes, once per epoch,
    whether the epoch ending was cut short (`cut_short`).
    """

    def __init__(self, hook: Callable[[], None]) -> None:
        self.hook = hook
        self.pending: int | None = None
        self.cut_short = False

    def end_epoch(self) -> bool:
        """Whether the epoch ending now was cut short by a stop, fixed until the next epoch
        ends: the first epoch-end callback asks, the others read `cut_short`, so that they
        agree even when a signal lands between them (its stop then comes after this epoch)."""
        self.cut_short = self.pending is not None
        return self.cut_short

    def _handle(self, signal_number: int, _frame) -> None:
        _ignore_further()
        if self.pending is None:
            self.pending = signal_number
            self.hook()

    @contextlib.contextmanager
    def active(self) -> Iterator[GracefulStop]:
        self.pending = None
        with _handled_by(self._handle):
            yield self

    def raise_if_pending(self) -> None:
        if self.pending is not None:
            raise Interrupted(self.pending)
