"""IDX parsing and validation, the processed cache, the dataset digest and the train/val split."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.config import IMAGE_SIDE, MNIST_FILES, NUM_CLASSES, PipelineError

IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}
CACHE_NAME = "mnist.npz"
MANIFEST_NAME = "manifest.json"
RAW_DIR = "raw"


@dataclass(frozen=True)
class Dataset:
    """The four MNIST arrays (images as uint8 0-255) plus where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    digest: str
    official: bool
    source: str
    test_official: bool = False  # the test files are byte-identical to the published ones

    def test_set(self) -> str:
        """What the test set is, in words (evaluate says which one it used)."""
        kind = (
            "the official MNIST test set"
            if self.test_official
            else ("a test set that is NOT the official MNIST one")
        )
        return f"{kind} ({len(self.y_test)} images, dataset digest {self.digest})"


@dataclass(frozen=True)
class Splits:
    """Training data split into train and validation (the test set is kept apart)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    digest: str
    validation_fraction: float = 0.0
    seed: int = 0
    fold: str = ""  # "2/5": the second of 5 cross-validation folds ("": a single split)

    def part_digest(self, part: str) -> str:
        """The digest of the train or validation part: the data's digest and how it was cut."""
        cut = (self.validation_fraction, self.seed, *([self.fold] if self.fold else []))
        return part_digest(self.digest, part, *cut)


def part_digest(digest: str, part: str, *cut: object) -> str:
    """A short digest naming one part (train, validation, test) of the data digest holds."""
    text = ":".join(str(item) for item in (digest, part, *cut))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_idx(path: Path, kind: str) -> np.ndarray:
    """Decompress and validate one IDX file; images come back as (n, 28, 28) uint8."""
    name = path.name
    try:
        packed = path.read_bytes()
    except OSError as error:
        raise PipelineError(f"{name}: cannot be read ({error.strerror or error})") from None
    try:
        raw = gzip.decompress(packed)
    except EOFError:
        raise PipelineError(f"{name}: truncated gzip (the file ends early)") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as error:
        raise PipelineError(f"{name}: corrupt gzip ({error})") from None
    header_size = 16 if kind == "images" else 8
    if len(raw) < header_size:
        raise PipelineError(f"{name}: too short for an IDX {kind} header ({len(raw)} bytes)")
    magic, count = struct.unpack(">II", raw[:8])
    if magic != IDX_MAGIC[kind]:
        raise PipelineError(
            f"{name}: wrong magic number 0x{magic:08x} (expected 0x{IDX_MAGIC[kind]:08x} "
            f"for IDX {kind})"
        )
    if kind == "images":
        rows, cols = struct.unpack(">II", raw[8:16])
        if (rows, cols) != (IMAGE_SIDE, IMAGE_SIDE):
            raise PipelineError(f"{name}: images are {rows}x{cols}, expected 28x28")
    item_size = IMAGE_SIDE * IMAGE_SIDE if kind == "images" else 1
    expected = header_size + count * item_size
    if len(raw) != expected:
        raise PipelineError(
            f"{name}: {len(raw)} bytes after decompression, but the header's count of {count} "
            f"needs {expected}"
        )
    array = np.frombuffer(raw, dtype=np.uint8, offset=header_size)
    if kind == "images":
        return array.reshape(count, IMAGE_SIDE, IMAGE_SIDE)
    if count and array.max() >= NUM_CLASSES:
        raise PipelineError(f"{name}: label {int(array.max())} is outside 0-9")
    return array


def check_counts(arrays: dict[str, np.ndarray]) -> None:
    """Raise when a split's image and label counts disagree."""
    for split in ("train", "test"):
        images, labels = arrays[f"{split}-images"], arrays[f"{split}-labels"]
        if len(images) != len(labels):
            raise PipelineError(
                f"{MNIST_FILES[split + '-labels'][0]}: {len(labels)} labels but "
                f"{MNIST_FILES[split + '-images'][0]} holds {len(images)} images"
            )


def dataset_digest(arrays: dict[str, np.ndarray]) -> str:
    """A short content digest of the decoded arrays (independent of gzip settings)."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        digest.update(key.encode() + str(arrays[key].shape).encode())
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    return digest.hexdigest()[:16]


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path) then rename into place, so no partial file ever has the real name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(handle)
    try:
        write(Path(tmp_name))
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException as error:
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(error, OSError):  # disk full, read-only: say which file, keep the old one
            raise PipelineError(f"cannot write {path}: {error.strerror or error}") from None
        raise


def write_cache(data_dir: Path, arrays: dict[str, np.ndarray], manifest: dict) -> None:
    """Write the processed arrays and then the manifest that marks the cache complete."""

    def save_arrays(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            named = {key.replace("-", "_"): value for key, value in arrays.items()}
            np.savez(handle, **named)  # type: ignore[arg-type]  # numpy types allow_pickle only

    atomic_write(data_dir / CACHE_NAME, save_arrays)
    atomic_write(
        data_dir / MANIFEST_NAME,
        lambda tmp: tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True)),
    )


def read_manifest(data_dir: Path) -> dict | None:
    """The manifest of a complete cache, or None."""
    path = data_dir / MANIFEST_NAME
    if not path.is_file() or not (data_dir / CACHE_NAME).is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def load_dataset(data_dir: Path) -> Dataset:
    """Load the processed cache written by the download stage, checked against its manifest's
    digest on every load (a fast hash), so no run trains on or is tagged with data
    other than what the digest names."""
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    if manifest is None:
        raise PipelineError(
            f"no MNIST data in {data_dir}: run `pipeline download --data-dir {data_dir}` first"
        )
    cache = data_dir / CACHE_NAME
    try:
        with np.load(cache) as stored:
            arrays = {key: stored[key.replace("-", "_")] for key in MNIST_FILES}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        raise PipelineError(
            f"{cache} is unreadable ({type(error).__name__}); run `pipeline download --force`"
        ) from None
    digest = dataset_digest(arrays)
    if digest != manifest.get("digest"):
        raise PipelineError(
            f"{cache} does not match its manifest (digest {digest}, recorded "
            f"{manifest.get('digest')}); run `pipeline download --force`"
        )
    return Dataset(
        x_train=arrays["train-images"],
        y_train=arrays["train-labels"],
        x_test=arrays["test-images"],
        y_test=arrays["test-labels"],
        digest=digest,
        official=manifest["official"],
        source=manifest["source"],
        test_official=_test_official(manifest),
    )


def _test_official(manifest: dict) -> bool:
    """Whether a manifest's test files are byte-identical to MNIST's published ones."""
    return all(
        manifest["files"].get(MNIST_FILES[key][0], {}).get("official", False)
        for key in ("test-images", "test-labels")
    )


def data_name(data_dir: Path) -> str:
    """What the cached data is called in study names: "mnist" when its test set is MNIST's
    official one (or nothing is cached yet), "data" otherwise, so that a study of other data
    does not pass for an MNIST one."""
    manifest = read_manifest(data_dir)
    return "mnist" if manifest is None or _test_official(manifest) else "data"


def split_train_validation(dataset: Dataset, validation_fraction: float, seed: int) -> Splits:
    """Carve a seeded, stratified validation set out of the training set."""
    rng = np.random.default_rng(seed)
    val_parts = []
    for label in range(NUM_CLASSES):
        members = np.flatnonzero(dataset.y_train == label)
        rng.shuffle(members)
        val_parts.append(members[: int(round(len(members) * validation_fraction))])
    val_index = np.sort(np.concatenate(val_parts))
    train_mask = np.ones(len(dataset.y_train), dtype=bool)
    train_mask[val_index] = False
    if not train_mask.any() or not len(val_index):
        raise PipelineError(
            f"--validation-fraction {validation_fraction} leaves an empty train or validation "
            f"set for {len(dataset.y_train)} training images"
        )
    return Splits(
        x_train=dataset.x_train[train_mask],
        y_train=dataset.y_train[train_mask],
        x_val=dataset.x_train[val_index],
        y_val=dataset.y_train[val_index],
        digest=dataset.digest,
        validation_fraction=validation_fraction,
        seed=seed,
    )


def fold_splits(dataset: Dataset, folds: int, seed: int) -> list[Splits]:
    """Seeded, stratified k-fold cross-validation: split i validates on the i-th fold and trains
    on the others, so that every training image is validated on exactly once."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(dataset.y_train), dtype=np.int64)
    for label in range(NUM_CLASSES):
        members = np.flatnonzero(dataset.y_train == label)
        rng.shuffle(members)
        fold_of[members] = np.arange(len(members)) % folds
    if np.bincount(fold_of, minlength=folds).min() == 0:
        raise PipelineError(
            f"--folds {folds} leaves an empty fold for {len(dataset.y_train)} training images"
        )
    return [
        Splits(
            x_train=dataset.x_train[fold_of != fold],
            y_train=dataset.y_train[fold_of != fold],
            x_val=dataset.x_train[fold_of == fold],
            y_val=dataset.y_train[fold_of == fold],
            digest=dataset.digest,
            validation_fraction=1 / folds,
            seed=seed,
            fold=f"{fold + 1}/{folds}",
        )
        for fold in range(folds)
    ]


def class_counts(labels: np.ndarray) -> dict[str, int]:
    """Images per digit, keyed '0'..'9'."""
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    return {str(digit): int(count) for digit, count in enumerate(counts)}
