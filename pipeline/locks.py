"""Advisory locks (flock) on folders: one process at a time for the first use of a SQLite store,
a data folder, or a run's checkpoints. A folder is locked itself, so no lock file is left
behind; the kernel drops a lock when its process dies, SIGKILL included."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.errors import PipelineError


@contextlib.contextmanager
def exclusive(folder: Path, wait: bool = True, busy: str = "") -> Iterator[None]:
    """Hold an exclusive lock on folder (created if needed) while the block runs.

    With wait=False a lock held elsewhere is a one-line error: busy.
    """
    folder.mkdir(parents=True, exist_ok=True)
    handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise PipelineError(busy or f"{folder} is locked by another process") from None
        yield
    finally:
        os.close(handle)  # closing releases the lock


def sqlite_path(url: str) -> Path | None:
    """The database file of a sqlite:/// URL (None for other stores and in-memory SQLite)."""
    if not url.startswith("sqlite:"):
        return None
    path = urlsplit(url).path
    if url.startswith("sqlite:////"):
        return Path(path[1:] if path.startswith("//") else path)
    return Path(path.lstrip("/")) if path not in ("", "/", "/:memory:") else None


@contextlib.contextmanager
def store_creation(url: str) -> Iterator[None]:
    """Serialise the first use of a SQLite store (schema creation and migration) among local
    processes, by locking its folder; other stores (PostgreSQL, a tracking server) serialise it
    themselves."""
    path = sqlite_path(url)
    if path is None:
        yield
        return
    with exclusive(path.absolute().parent):
        yield
