"""Errors a user sees as one line, and helpers that keep those lines short and secret-free."""

from __future__ import annotations

import re
import signal
from urllib.parse import urlsplit, urlunsplit

# scheme://user:password@ anywhere in a text
_CREDENTIALS = re.compile(r"(\b[A-Za-z][\w+.-]*://[^\s/:@]*):[^\s/@]*@")


class PipelineError(ValueError):
    """Bad input or a failed precondition, reported to the user as one line."""


class StageInterrupted(Exception):
    """A stage stopped by SIGINT or SIGTERM (after closing its run, if any, as KILLED)."""

    def __init__(self, run_id: str | None, signal_number: int) -> None:
        name = signal.Signals(signal_number).name
        ended = f"; run {run_id} was marked KILLED" if run_id else ""
        super().__init__(f"interrupted by {name}{ended}")
        self.run_id, self.signal_number = run_id, signal_number


# The database driver's own words inside an MLflow or SQLAlchemy error, whose first line may be
# a hint about sessions ("raised as a result of Query-invoked autoflush ...").
_DRIVER_ERROR = re.compile(r"\((?:sqlite3|psycopg2?|pymysql)\.[\w.]+\) [^\n]+")


def first_line(error: BaseException) -> str:
    """The line of an exception that says what went wrong, for one-line messages."""
    text = str(error)
    driver = _DRIVER_ERROR.search(text)
    if driver:
        return driver.group(0)[:300]
    return (text.strip().splitlines() or [type(error).__name__])[0][:300]


def redact(uri: str) -> str:
    """A URI with any password replaced by ***."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def redact_text(text: str) -> str:
    """text with the password of every URL in it replaced by ***."""
    return _CREDENTIALS.sub(r"\1:***@", text)


def scrub(message: str, uri: str) -> str:
    """message with the password of uri (if any) replaced by ***."""
    password = urlsplit(uri).password
    return message.replace(password, "***") if password else message


def environment_failure(error: Exception) -> str | None:
    """One line for the environment failing (memory, disk, an MLflow store); None for a bug."""
    if isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError":
        shape = re.search(r"shape\[[\d,]+\]", str(error))
        what = f" (a tensor of {shape.group(0)})" if shape else ""
        return (
            f"not enough memory for this model{what}; try a smaller --hidden-size or --batch-size"
        )
    if not (isinstance(error, OSError) or type(error).__module__.startswith("mlflow")):
        return None
    message = f"{type(error).__name__}: {first_line(error)}"
    path = getattr(error, "filename", None)
    if path and str(path) not in message:  # a disk or permission error names its file
        message += f" ({path})"
    return message
