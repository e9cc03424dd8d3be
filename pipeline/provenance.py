"""Where a run's code came from: the package's source hash and, in a git checkout, the commit.

MLflow takes a run's commit from the entry script, and the virtualenv's `pipeline` launcher is
git-ignored, so runs started with `pipeline ...` would carry no commit without these tags.
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CODE_PATHS = (":/pipeline", ":/pyproject.toml", ":/conda.yaml", ":/MLproject")


@functools.cache
def code_hash() -> str:
    """A hash of the package's source: a change in any module changes it."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE)).encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=PACKAGE, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):  # no git here
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@dataclass(frozen=True)
class Provenance:
    """The package's source hash and, in a git checkout of this repository, its commit and
    whether the code (the package and the project files, CODE_PATHS) differs from it (None:
    not known)."""

    code_hash: str
    git_commit: str | None = None
    git_dirty: bool | None = None


@functools.cache
def provenance() -> Provenance:
    """Where this process's code came from (see Provenance)."""
    # Only this repository's commit: an installed copy inside some other checkout (a
    # virtualenv in the user's own project, say) is not tracked there.
    tracked = _git("ls-files", "--error-unmatch", "__init__.py") is not None
    commit = _git("rev-parse", "HEAD") if tracked else None
    if not commit:
        return Provenance(code_hash())
    # Dirty means the code differs from the commit: the package (new modules included) or the
    # files that say how it is installed and run; not a report or data a run wrote.
    status = _git("status", "--porcelain", "--untracked-files=all", "--", *CODE_PATHS)
    return Provenance(code_hash(), commit, None if status is None else bool(status))
