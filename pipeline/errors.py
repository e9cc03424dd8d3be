"""Errors a user sees as one line, and helpers that keep those lines short and secret-free."""

from __future__ import annotations

import re
import signal

_SCHEME = re.compile(r"[A-Za-z][\w+.-]*://")
_URL = re.compile(r"\b[A-Za-z][\w+.-]*://[^\s\"'<>]+")  # a URL in a message, to its end
_DELIMITER = re.compile(r"[@#/:?]")  # where a client might cut a password it misreads


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
    """The line of an exception that says what went wrong, for one-line messages: whole up to
    its first sentence, and a long one cut between words, never inside a URL."""
    text = str(error)
    driver = _DRIVER_ERROR.search(text)
    line = driver.group(0) if driver else (text.strip().splitlines() or [type(error).__name__])[0]
    # A message quoted inside another (MLflow's async logging) carries its line ends as "\\n",
    # and SQLAlchemy's statement after them: the driver's own words end there.
    return shorten(re.split(r"\\n|\s*\[SQL: ", line)[0].strip())


def shorten(line: str, limit: int = 300) -> str:
    """line up to its first sentence's end when it is longer than limit, else cut at the last
    space before limit (a URL holds no space, so none is cut)."""
    if len(line) <= limit:
        return line
    sentence = re.search(r"[.!?](\s|$)", line)
    if sentence and sentence.end() <= 2 * limit:
        return line[: sentence.start() + 1]
    cut = line.rfind(" ", 0, limit)
    return (line[:cut] if cut > 0 else line) + " …"


def _split_userinfo(uri: str) -> tuple[str, str, str, str] | None:
    """(scheme://, user, password, rest after the @) of a URL with a password, else None.

    The userinfo ends at the last @, as clients read it, so a password may hold @, #, / or :
    (p@ss#w0rd/x:y) and all of it is found; a URL whose path holds an @ is then over-redacted,
    never under-redacted.
    """
    scheme = _SCHEME.match(uri)
    if scheme is None:
        return None
    rest = uri[scheme.end() :]
    userinfo, at, after = rest.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not at or not colon:
        return None
    return scheme.group(0), user, password, after


def redact(uri: str) -> str:
    """A URI with any password replaced by ***."""
    parts = _split_userinfo(uri)
    if parts is None:
        return uri
    scheme, user, _, after = parts
    return f"{scheme}{user}:***@{after}"


def redact_text(text: str) -> str:
    """text with the password of every URL in it replaced by ***."""
    return _URL.sub(lambda found: redact(found.group(0)), text)


def scrub(message: str, uri: str) -> str:
    """message with uri's password replaced by ***, and every piece of it a client that reads
    the userinfo differently (up to the first @, say) could echo as a host or a path."""
    parts = _split_userinfo(uri)
    password = parts[2] if parts else None
    if not password:
        return redact_text(message)
    # Every run of the password between two of its delimiters (or its ends).
    delimiters = list(_DELIMITER.finditer(password))
    starts = [0, *(found.end() for found in delimiters)]
    ends = [*(found.start() for found in delimiters), len(password)]
    pieces = {password[start:end] for start in starts for end in ends if end > start}
    for piece in sorted(pieces, key=len, reverse=True):
        if len(piece) >= 4 or piece == password:
            message = message.replace(piece, "***")
        else:  # short pieces ("x", "a1") only where a client echoes them: as a host's userinfo
            message = message.replace(f"{piece}@", "***@")
    return redact_text(message)


def environment_failure(error: Exception) -> str | None:
    """One line for the environment failing (memory, disk, an MLflow store); None for a bug."""
    if isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError":
        shape = re.search(r"shape\[[\d,]+\]", str(error))
        what = f" (a tensor of {shape.group(0)})" if shape else ""
        return (
            f"not enough memory for this model{what}; try a smaller --hidden-size or --batch-size"
        )
    if type(error).__name__ == "StorageInternalError" and error.__cause__ is not None:
        # Optuna's words ("invalid data in the commit") hide the database's own: say those.
        return f"the study storage failed: {first_line(error.__cause__)}"
    if not (isinstance(error, OSError) or type(error).__module__.startswith("mlflow")):
        return None
    message = f"{type(error).__name__}: {first_line(error)}"
    path = getattr(error, "filename", None)
    if path and str(path) not in message:  # a disk or permission error names its file
        message += f" ({path})"
    return message
