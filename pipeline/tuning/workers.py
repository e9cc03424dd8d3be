"""A worker's trials in fresh processes, a few at a time.

Keras and TensorFlow keep part of every model a process fits, whatever clear_session() and gc
do (keras-team/keras#17458, tensorflow/tensorflow#61791): a long study in one process would
grow without bound (bench/tune_memory.py measures it). So a worker runs its trials in a child
process, `trials_per_process` of them, then starts a new child for the next share. The
`pipeline tune` process holds the study's MLflow run and waits; it fits no trial's model (only
--retrain-best's, at the end).

Faults: SIGINT or SIGTERM to the worker reaches the child (it ends its trial's run KILLED),
and the worker waits for it; a SIGKILLed worker takes its child with it (Linux), so its trial is
left for Optuna's heartbeat to retry, as before.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from pipeline import fast_exit, interrupts
from pipeline.errors import PipelineError, StageInterrupted, environment_failure

PR_SET_PDEATHSIG = 1  # linux/prctl.h


class ProcessDied(PipelineError):
    """A child process ended by a signal (the OOM killer, say) without ending its trial."""

    def __init__(self, message: str, pid: int) -> None:
        super().__init__(message)
        self.pid = pid


def run_shares(
    share: Callable[[int, float | None, int, Callable[[object], None]], int],
    n_trials: int,
    timeout: float | None,
    per_process: int,
    on_message: Callable[[Any], None],
) -> int:
    """Run n_trials as share(trials, deadline, index, tell) calls, each in a new process, each
    of at most per_process trials, none started after the deadline (time.time() + timeout). Each
    call returns the trials it ran; what it passes to tell reaches on_message here, at once.
    Returns the trials run in all."""
    done, index = 0, 0
    deadline = None if timeout is None else time.time() + timeout
    while done < n_trials and (deadline is None or time.time() < deadline):
        ran = in_child(share, (min(per_process, n_trials - done), deadline, index), on_message)
        if ran == 0:  # the time ran out before its first trial
            break
        done, index = done + ran, index + 1
    return done


def in_child(function: Callable, args: tuple, on_message: Callable[[Any], None]) -> Any:
    """function(*args, tell) in a fresh (spawned) process: its result, or its error raised here;
    each tell(message) there is on_message(message) here."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(
        target=_child, args=(send, os.getpid(), function, args), name="pipeline-trials"
    )
    child.start()
    pid = child.pid or 0  # set once started
    send.close()
    try:
        try:
            kind, value = receive.recv()
            while kind == "message":
                on_message(value)
                kind, value = receive.recv()
        except EOFError:  # it died without a word: a signal (the OOM killer, say)
            child.join()
            message = f"trial process {pid} died ({_death(child)})"
            raise ProcessDied(message, pid) from None
    except BaseException:
        if child.is_alive():  # this process was stopped: the child ends its trial, then exits
            os.kill(pid, signal.SIGTERM)
        raise
    finally:
        child.join()
        receive.close()
    if kind == "result":
        return value
    if kind == "interrupted":
        raise interrupts.Interrupted(value)
    raise PipelineError(value)


def _death(child) -> str:
    code = child.exitcode
    if code is not None and code < 0:
        return signal.Signals(-code).name
    return f"exit code {code}"


def _child(send, parent: int, function: Callable, args: tuple) -> None:
    _die_with(parent)

    def tell(message: object) -> None:
        sys.stdout.flush()  # what the child printed comes before what the worker prints now
        send.send(("message", message))

    try:
        with interrupts.raising():  # as in the worker: a stop signal ends the trial in hand
            outcome = ("result", function(*args, tell))
    except (KeyboardInterrupt, StageInterrupted) as error:
        outcome = ("interrupted", getattr(error, "signal_number", signal.SIGINT))
    except PipelineError as error:
        outcome = ("error", str(error))
    except Exception as error:  # every failure goes back to the worker
        message = environment_failure(error)
        if message is None:  # a bug: its traceback is the useful output
            traceback.print_exc()
            message = f"the trial process failed: {type(error).__name__}: {error}"
        outcome = ("error", message)
    sys.stdout.flush()
    send.send(outcome)
    send.close()
    fast_exit.leave(0)  # as the CLI does: no slow teardown of TensorFlow while the worker waits


def _die_with(parent: int) -> None:
    """Have the kernel SIGKILL this process when the worker that started it dies (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: an orphan finishes its share, then exits
        return
    if os.getppid() != parent:  # the worker died before prctl took effect
        os._exit(1)
