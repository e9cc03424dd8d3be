"""Copying one file's bytes from a URL or an open file into a file: streamed with progress,
credentials in the URL sent as a Basic auth header, bounded retries, a full disk named."""

from __future__ import annotations

import base64
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from pipeline.config import DataConfig
from pipeline.errors import PipelineError

CHUNK = 1 << 16
Progress = Callable[..., None]  # (label, done, total or None, unit="bytes")


def stream(reader, dest: Path, label: str, total: int | None, progress: Progress | None):
    """Copy reader into dest, telling progress of the bytes done."""
    done = 0
    with dest.open("wb", buffering=0) as out:  # unbuffered: a full disk fails in write()
        for chunk in iter(lambda: reader.read(CHUNK), b""):
            try:
                view = memoryview(chunk)
                while view:  # a raw write may take part of the chunk
                    view = view[out.write(view) or 0 :]
            except OSError as error:  # disk full, quota: say which file
                raise PipelineError(f"cannot write {dest}: {error.strerror or error}") from None
            done += len(chunk)
            if progress:
                progress(label, done, total)


def _request(url: str) -> urllib.request.Request:
    """A GET for url; credentials in the URL (user:password@) become a Basic auth header."""
    parts = urllib.parse.urlsplit(url)
    headers = {"User-Agent": "mnist-pipeline"}
    if parts.username is not None:
        user, password = parts.username, parts.password or ""
        pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        url = urllib.parse.urlunsplit(parts._replace(netloc=host))
    return urllib.request.Request(url, headers=headers)


def http_get(url: str, dest: Path, config: DataConfig, progress: Progress | None) -> None:
    """GET url into dest with bounded retries; raises the last error."""
    label = url.rsplit("/", 1)[-1]
    for attempt in range(config.retries):
        try:
            request = _request(url)
            with urllib.request.urlopen(request, timeout=config.timeout_seconds) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                stream(response, dest, label, total, progress)
            return
        except urllib.error.HTTPError as error:
            if error.code < 500 or attempt + 1 == config.retries:
                raise
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            if attempt + 1 == config.retries:
                raise
        time.sleep(0.5 * 2**attempt)


def describe(error: Exception) -> str:
    """A failed transfer's cause, short: HTTP 404, the URL error's reason."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__
