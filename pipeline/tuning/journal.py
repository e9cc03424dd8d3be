"""A journal-file study storage that never keeps a partial line.

Optuna's JournalFileBackend appends each batch of log lines under a file lock. When the disk fills
(or the write fails otherwise) part of a line stays in the file, the next append is glued to it,
and every later replay of the study stops on an assertion ("Should not reach."): the whole study is
unreadable. Here an append that fails is cut back to the file's size before it, under the same
lock, so the study stays as it was and the error says what happened. A writer killed mid-append
leaves part of a line: under the lock no one else writes, so the next append (its own worker's
FAIL record, say) first cuts it, and opening the journal cuts it too. A journal an older version
let grow a damaged line (a half line with a record glued on) has that line dropped when it is
opened, so that every later line is read; `dropped` names the lines.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

_CHUNK = 1 << 16  # bytes read at a time when looking back for the last whole line


class TidyJournal(JournalFileBackend):
    """Optuna's journal file (same format, same lock) whose appends are all or nothing."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._writers = JournalFileSymlinkLock(path)  # Optuna's own lock, so workers agree
        super().__init__(path, self._writers)
        self.dropped: list[int] = []  # 1-based numbers of the damaged lines dropped on opening
        with self._locked():
            if not _ends_whole(path):  # a writer died mid-append
                _cut_partial_line(path)
            self.dropped = _drop_damaged_lines(path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._writers.acquire()
        try:
            yield
        finally:
            self._writers.release()

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
        with self._locked():
            if not _ends_whole(self._path):  # a writer killed mid-append: never glue onto it
                _cut_partial_line(self._path)
            size = os.path.getsize(self._path)
            try:
                with open(self._path, "ab") as file:
                    file.write(text.encode("utf-8"))
                    file.flush()
                    os.fsync(file.fileno())
            except OSError as error:
                os.truncate(self._path, size)  # only this append's bytes: the lock is held
                raise optuna.exceptions.StorageInternalError(str(error)) from error


def _ends_whole(path: str) -> bool:
    """Whether the file is empty or ends with a line's end."""
    with open(path, "rb") as file:
        end = file.seek(0, os.SEEK_END)
        if end == 0:
            return True
        file.seek(end - 1)
        return file.read(1) == b"\n"


def _cut_partial_line(path: str) -> None:
    """Cut the file after its last line's end (to nothing if it has none)."""
    with open(path, "rb+") as file:
        position = file.seek(0, os.SEEK_END)
        while position > 0:
            start = max(0, position - _CHUNK)
            file.seek(start)
            newline = file.read(position - start).rfind(b"\n")
            if newline >= 0:
                file.truncate(start + newline + 1)
                return
            position = start
        file.truncate(0)


def _damaged(line: bytes) -> bool:
    """Whether a journal line is not one whole record (a cheap look first: one record each)."""
    if line.count(b'{"op_code"') == 1 and line.endswith(b"}\n"):
        return False
    try:
        json.loads(line)
    except ValueError:
        return True
    return False


def _drop_damaged_lines(path: str) -> list[int]:
    """Rewrite the journal without its damaged lines (to a temporary name, then renamed; the
    lock is held); the dropped lines' numbers."""
    with open(path, "rb") as file:
        lines = file.readlines()
    dropped = [number for number, line in enumerate(lines, start=1) if _damaged(line)]
    if dropped:
        kept = [line for number, line in enumerate(lines, start=1) if number not in dropped]
        temporary = f"{path}.repair"
        with open(temporary, "wb") as file:
            file.writelines(kept)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    return dropped
