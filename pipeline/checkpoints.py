"""Per-epoch checkpoints: weights, optimizer state and progress, written atomically.

Arrays are keyed by each variable's Keras path (not its position), copied on the training
thread (milliseconds) and written by a background thread, so a checkpoint costs the training
loop almost nothing; a checkpoint that does not fit the model is an error, never a silent mix.
"""

from __future__ import annotations

import json
import time
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import data, locks
from pipeline.errors import PipelineError

WEIGHTS_FILE = "weights.npz"
STATE_FILE = "state.json"


def _variables(model) -> dict[str, Any]:
    variables = {f"model/{v.path}": v for v in model.weights}
    # Optimizer paths start with the optimizer's own name, which Keras numbers per process.
    variables |= {f"optimizer/{v.path.split('/', 1)[-1]}": v for v in model.optimizer.variables}
    return variables


class CheckpointWriter:
    """Saves a model's variables and a state dict into folder, one write at a time."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self.pending: Future | None = None

    def save(self, model, state: dict) -> None:
        """Snapshot now, write in the background."""
        self.wait()
        arrays = {key: variable.numpy() for key, variable in _variables(model).items()}
        self.pending = self.writer.submit(self._write, arrays, dict(state))

    def wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def _write(self, arrays: dict, state: dict) -> None:
        def write_arrays(path: Path) -> None:
            with path.open("wb") as handle:
                np.savez(handle, **arrays)

        data.atomic_write(self.folder / WEIGHTS_FILE, write_arrays)
        data.atomic_write(
            self.folder / STATE_FILE, lambda path: path.write_text(json.dumps(state))
        )


def load_state(folder: Path, run_id: str) -> dict:
    """The saved progress of an interrupted run, for --resume, checked readable in full."""
    path = folder / STATE_FILE
    if not path.is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise PipelineError(
            f"--resume {run_id}: no checkpoint in {folder} (a run stopped in its first epoch "
            "has none: train it again)"
        )
    try:
        state = json.loads(path.read_text())
        missing = {"epoch", "step", "config", "digest"} - set(state)
        if missing:
            raise KeyError(", ".join(sorted(missing)))
        with np.load(folder / WEIGHTS_FILE) as arrays:
            for key in arrays.files:  # reading every array finds a truncated file
                arrays[key].shape  # noqa: B018
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as error:
        raise PipelineError(
            f"--resume {run_id}: the checkpoint in {folder} is damaged ({type(error).__name__}); "
            f"the run cannot be resumed"
        ) from None
    return state


def remove_leftovers(folder: Path) -> None:
    """Delete partial files a killed writer left (call with the folder's lock held)."""
    for leftover in folder.glob(".*.part"):
        leftover.unlink(missing_ok=True)


def tidy(checkpoint_dir: Path, settled_seconds: float = 60) -> list[Path]:
    """Remove the partial files of runs no process here is writing (their folder's lock is
    free and the file has not changed for settled_seconds, a writer elsewhere being done
    with it), and a folder a killed run left with nothing in it; the folders tidied."""
    tidied = []
    for folder in sorted(Path(checkpoint_dir).glob("*/")):
        try:
            with locks.exclusive(folder, wait=False):
                cutoff = time.time() - settled_seconds
                stale = [part for part in folder.glob(".*.part") if part.stat().st_mtime < cutoff]
                for part in stale:
                    part.unlink(missing_ok=True)
                if stale and not any(folder.iterdir()):
                    folder.rmdir()
                if stale:
                    tidied.append(folder)
        except (PipelineError, OSError):  # in use here, or gone meanwhile
            continue
    return tidied


def restore_into(model, folder: Path) -> None:
    """Assign a checkpoint's arrays to a compiled model's variables (optimizer built first)."""
    model.optimizer.build(model.trainable_variables)
    variables = _variables(model)
    with np.load(folder / WEIGHTS_FILE) as arrays:
        if set(arrays.files) != set(variables):
            raise PipelineError(f"the checkpoint in {folder} does not fit this model")
        for key, variable in variables.items():
            variable.assign(arrays[key])
