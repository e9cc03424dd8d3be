"""Fetching the four MNIST files from mirrors or a local source, verifying and caching them.

No tracking here: the download stage (downloading.py) records what this cached as a run.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipeline import data, locks, transfer
from pipeline.config import MNIST_FILES, OFFICIAL_CHECKSUMS, DataConfig, PipelineError
from pipeline.errors import redact, redact_text

# Keys of a file's entry in the manifest (and DownloadResult.files).
MD5_KEY = "md5"
OFFICIAL_KEY = "official"
SUM_FILES = {"SHA256SUMS": "sha256", "MD5SUMS": "md5"}
Progress = transfer.Progress


@dataclass(frozen=True)
class DownloadResult:
    """What the download stage verified and cached."""

    data_dir: Path
    source: str
    official: bool
    files: dict[str, dict[str, str]]  # file name -> md5, sha256, official, origin
    counts: dict[str, int]
    class_counts: dict[str, dict[str, int]]
    digest: str
    skipped: bool


def _hashes(path: Path) -> dict[str, str]:
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(transfer.CHUNK), b""):
            md5.update(chunk)
            sha256.update(chunk)
    return {MD5_KEY: md5.hexdigest(), "sha256": sha256.hexdigest()}


def _from_mirrors(name: str, dest: Path, config: DataConfig, expected_md5: str, progress) -> str:
    """Fetch name from the first mirror that serves a copy with the expected MD5."""
    tried = []
    for mirror in config.mirrors:
        url = urllib.parse.urljoin(mirror if mirror.endswith("/") else mirror + "/", name)
        try:
            transfer.http_get(url, dest, config, progress)
        except (urllib.error.URLError, OSError) as error:
            tried.append(f"{redact(url)} ({transfer.describe(error)})")
            continue
        md5 = _hashes(dest)[MD5_KEY]
        if md5 == expected_md5:
            return url
        tried.append(f"{redact(url)} (checksum mismatch: MD5 {md5}, expected {expected_md5})")
    raise PipelineError(
        f"{name}: no mirror gave a verified copy; tried {'; '.join(tried)}. "
        f"Offline? Use `pipeline download --source PATH_OR_URL` with a folder holding the files"
    )


def _source_location(source: str) -> tuple[str, str]:
    """('dir', path) for a folder or file:// URL, ('url', base) for http(s)."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("http", "https"):
        return "url", source if source.endswith("/") else source + "/"
    if parsed.scheme == "file":
        source = urllib.request.url2pathname(parsed.path)
    elif parsed.scheme and len(parsed.scheme) > 1:
        raise PipelineError(
            f"--source {redact(source)}: only folders, file:// and http(s):// work"
        )
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise PipelineError(f"--source {source}: no such folder")
    return "dir", str(folder)


def _from_source(
    name: str, dest: Path, config: DataConfig, progress, optional=False
) -> str | None:
    """Copy name from the --source folder or URL into dest; None when optional and absent."""
    kind, base = _source_location(config.source or "")
    if kind == "dir":
        path = Path(base) / name
        if not path.is_file():
            if optional:
                return None
            raise PipelineError(f"{name}: missing from source folder {base}")
        with path.open("rb") as reader:
            transfer.stream(reader, dest, name, path.stat().st_size, progress)
        return str(path)
    url = base + name
    try:
        transfer.http_get(url, dest, config, progress)
    except (urllib.error.URLError, OSError) as error:
        if optional:
            return None
        raise PipelineError(
            f"{name}: could not fetch {redact(url)} ({transfer.describe(error)})"
        ) from None
    return url


def _source_sums(staging: Path, config: DataConfig) -> dict[str, tuple[str, str]]:
    """Checksums published beside a source (SHA256SUMS / MD5SUMS): file -> (algorithm, hex)."""
    sums: dict[str, tuple[str, str]] = {}
    for sum_file, algorithm in SUM_FILES.items():
        dest = staging / sum_file
        if _from_source(sum_file, dest, config, None, optional=True) is None:
            continue
        for line in dest.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 2:
                sums.setdefault(parts[1].lstrip("*"), (algorithm, parts[0].lower()))
    return sums


def _fetch_all(staging: Path, config: DataConfig, checksums, progress) -> dict[str, dict]:
    """Fetch and checksum-verify the four files into staging."""
    sums = _source_sums(staging, config) if config.source else {}
    files = {}
    for name, _, _ in MNIST_FILES.values():
        dest = staging / name
        if config.source:
            origin = _from_source(name, dest, config, progress)
        else:
            origin = _from_mirrors(name, dest, config, checksums[name], progress)
        hashes = _hashes(dest)
        if name in sums and hashes[sums[name][0]] != sums[name][1]:
            algorithm, expected = sums[name]
            raise PipelineError(
                f"{name}: checksum mismatch ({algorithm.upper()} {hashes[algorithm]}, the "
                f"source's {algorithm.upper()}SUMS says {expected})"
            )
        official = hashes[MD5_KEY] == checksums[name]
        files[name] = {**hashes, OFFICIAL_KEY: official, "origin": redact(origin or "")}
    return files


def _writable(data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=data_dir).close()
    except OSError as error:
        raise PipelineError(
            f"data directory {data_dir} is not writable ({error.strerror or error})"
        ) from None


def _result(data_dir: Path, manifest: dict, skipped: bool) -> DownloadResult:
    keys = ("source", "official", "files", "counts", "class_counts", "digest")
    return DownloadResult(data_dir, **{key: manifest[key] for key in keys}, skipped=skipped)


def _cached(data_dir: Path) -> dict | None:
    """The manifest when every cached raw file still has its recorded checksum and the
    processed cache still has the recorded digest; None means fetch again."""
    manifest = data.read_manifest(data_dir)
    if manifest is None:
        return None
    for name, recorded in manifest["files"].items():
        path = data_dir / data.RAW_DIR / name
        if not path.is_file() or _hashes(path)["sha256"] != recorded["sha256"]:
            return None
    try:
        data.load_dataset(data_dir)
    except PipelineError:
        return None
    return manifest


def _source_key(config: DataConfig) -> str:
    """What a cache's source is, comparable between calls: a folder's absolute path, an
    http(s) base without its password, or the mirrors."""
    if not config.source:
        return "mirrors"
    kind, base = _source_location(config.source)
    return f"dir:{Path(base).resolve()}" if kind == "dir" else f"url:{redact(base)}"


def _from_the_asked_source(manifest: dict, config: DataConfig) -> bool:
    """Whether a verified cache is what this call asks for: any cache without --source; with
    --source, only one fetched from that very source (else it is fetched again)."""
    return not config.source or manifest.get("source_key") == _source_key(config)


def download(
    config: DataConfig,
    force: bool = False,
    progress: Progress | None = None,
    checksums: dict[str, str] = OFFICIAL_CHECKSUMS,
) -> DownloadResult:
    """Fetch, verify, parse and cache MNIST; a no-op when a verified cache is already there.

    One download at a time per folder (a file lock): concurrent calls end with one valid cache,
    the later ones finding it verified. Leftovers of a killed download are removed first.
    """
    data_dir = Path(config.data_dir)
    if config.source:
        _source_location(config.source)  # a bad source fails before anything is written
    _writable(data_dir)
    with locks.exclusive(data_dir):
        _remove_leftovers(data_dir)
        manifest = None if force else _cached(data_dir)
        if manifest is not None and _from_the_asked_source(manifest, config):
            return _result(data_dir, manifest, skipped=True)
        with tempfile.TemporaryDirectory(prefix=".staging-", dir=data_dir) as staging_name:
            manifest = _fetch_and_cache(Path(staging_name), data_dir, config, checksums, progress)
    return _result(data_dir, manifest, skipped=False)


def _remove_leftovers(data_dir: Path) -> None:
    """Staging folders and partial files of a download that was killed (lock held)."""
    for leftover in data_dir.glob(".staging-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in [*data_dir.glob(".*.part"), *data_dir.glob(f"{data.RAW_DIR}/.*.part")]:
        leftover.unlink(missing_ok=True)


def _fetch_and_cache(staging: Path, data_dir: Path, config: DataConfig, checksums, progress):
    """Fetch into staging, verify and parse, then move the files into place; the manifest."""
    files = _fetch_all(staging, config, checksums, progress)
    arrays = {}
    for key, (name, _, kind) in MNIST_FILES.items():
        arrays[key] = data.parse_idx(staging / name, kind)
        if progress:
            progress("parsing", len(arrays), len(MNIST_FILES), "files")
    data.check_counts(arrays)
    manifest = {
        "source": redact_text(config.source or ", ".join(config.mirrors)),
        "source_key": _source_key(config),
        "official": all(entry["official"] for entry in files.values()),
        "files": files,
        "counts": {"train": len(arrays["train-labels"]), "test": len(arrays["test-labels"])},
        "class_counts": {
            split: data.class_counts(arrays[f"{split}-labels"]) for split in ("train", "test")
        },
        "digest": data.dataset_digest(arrays),
    }
    raw_dir = data_dir / data.RAW_DIR
    raw_dir.mkdir(exist_ok=True)
    for name in files:
        (staging / name).replace(raw_dir / name)
    data.write_cache(data_dir, arrays, manifest)
    return manifest
