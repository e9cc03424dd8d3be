"""Which process runs a trial (and the memory it holds), and failing the trials whose process is
gone.

An RDB storage learns that a trial's process died from its missing heartbeat, and a surviving
worker runs the trial again (storage.ReapAndRetry). A journal file has no heartbeat: a trial whose
process was killed, or could not store its end (a full disk), would stay RUNNING for good. So each
trial records its process as the kernel names it (boot, pid namespace, pid, start time: a pid alone
is reused, and names another process in another container), and a worker that opens a journal
study fails the RUNNING trials whose process is known to have ended. A process on another machine
or in another container is never judged.
"""

from __future__ import annotations

import os
from pathlib import Path

import optuna

from pipeline import tracking
from pipeline.tracking import names


def process_identity(pid: int | None = None) -> str | None:
    """The process, named uniquely on this machine (None where /proc cannot tell)."""
    pid = os.getpid() if pid is None else pid
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
        # Field 22 of stat, the start time; fields are counted after the name's closing ")".
        started = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None
    return f"{boot}/{namespace}/{pid}/{started}"


def gone(owner: str) -> bool:
    """Whether the process an identity names has ended: it was this machine's and this pid
    namespace's, and no process with its pid and start time runs now (a zombie, killed but not
    yet reaped by a parent that died too, has ended)."""
    here = process_identity()
    parts = owner.split("/")
    if here is None or len(parts) != 4 or parts[:2] != here.split("/")[:2]:
        return False
    if not parts[2].isdigit():  # a damaged record names no process this machine could run
        return False
    pid = int(parts[2])
    return process_identity(pid) != owner or _state(pid) in ("Z", "X")


def _state(pid: int) -> str | None:
    """A process's state letter (R, S, Z for a zombie...), None when it is not there."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def fail_orphans(study: optuna.Study) -> None:
    """Fail the study's RUNNING trials whose process has ended, and end their MLflow runs
    KILLED (not RUNNING until a reaper comes by)."""
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        owner = trial.user_attrs.get(names.OWNER_ATTR)
        if isinstance(owner, str) and gone(owner):
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            run_id = trial.user_attrs.get(names.RUN_ATTR)
            if run_id:
                tracking.finish_run(run_id, "KILLED", "its trial process ended")


def resident_megabytes() -> float:
    """This process's resident memory now (Linux), to show a long study does not grow."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
    except OSError:  # not Linux
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
