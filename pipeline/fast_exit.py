"""Leaving the process: what normal exit does that matters, without the slow part.

After the last atexit handler, CPython tears down every module and native library; with
TensorFlow, MLflow and SQLAlchemy loaded that takes seconds on a small machine
(bench/cli_latency.py) and does nothing a finished command needs. So the console script
flushes, waits for non-daemon threads and runs the atexit handlers (MLflow's flushes among
them), exactly as a normal exit would, then ends at once.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading


def exit_code(code: object) -> int:
    """The status SystemExit(code) stands for (a message prints to stderr and means 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def leave(code: int) -> None:
    """End the process with code after everything a normal exit would flush or wait for."""
    # The interpreter's own exit path, in its order: thread pools told to stop and non-daemon
    # threads joined, then the atexit handlers.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or a broken pipe: nothing more to say
            pass
    os._exit(code)
