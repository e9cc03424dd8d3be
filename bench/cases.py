"""The search benches' cases: data with headroom, built from the local MNIST files (--source)
without downloads, each with a validation split of 1,970 images so that paired comparisons keep
their power:
- subset: the local training files as they are, the default preset to start from;
- small-2k / small-5k: 1,970 / 4,925 training images (the first images of the file), where the
  default preset, chosen on the full subset, is not tuned;
- noisy: the subset with 25 % of its training labels replaced by a wrong digit (seeded);
- seed: the subset, the study built on the notebook's seed preset (`--start-from seed`).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
from common import Workspace  # bench/, beside this script

from pipeline import data

VALIDATION = 1970
CASES = {  # name: (training images, label noise, tune options)
    "subset": (None, 0.0, ()),
    "small-2k": (1970, 0.0, ()),
    "small-5k": (4925, 0.0, ()),
    "noisy": (None, 0.25, ()),
    "seed": (None, 0.0, ("--start-from", "seed")),
}
FILES = {
    "train-images-idx3-ubyte.gz": ("train", "images"),
    "train-labels-idx1-ubyte.gz": ("train", "labels"),
    "t10k-images-idx3-ubyte.gz": ("test", "images"),
    "t10k-labels-idx1-ubyte.gz": ("test", "labels"),
}


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">II", 0x803 if array.ndim == 3 else 0x801, array.shape[0])
    if array.ndim == 3:
        header += struct.pack(">II", *array.shape[1:])
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0))


def case_source(work: Workspace, source: Path, case: str) -> tuple[Path, float]:
    """The case's IDX folder (made once) and its validation fraction."""
    count, noise, _ = CASES[case]
    folder = work.folder / "sources" / case
    arrays = {name: data.parse_idx(source / name, kind) for name, (_, kind) in FILES.items()}
    total = len(arrays["train-labels-idx1-ubyte.gz"])
    keep = total if count is None else count + VALIDATION
    if not folder.is_dir():
        folder.mkdir(parents=True)
        labels = arrays["train-labels-idx1-ubyte.gz"][:keep].copy()
        if noise:
            rng = np.random.default_rng(20261203)
            flipped = rng.random(keep) < noise
            labels[flipped] = (labels[flipped] + rng.integers(1, 10, flipped.sum())) % 10
        arrays["train-labels-idx1-ubyte.gz"] = labels
        arrays["train-images-idx3-ubyte.gz"] = arrays["train-images-idx3-ubyte.gz"][:keep]
        for name, array in arrays.items():
            write_idx(folder / name, array)
    return folder, round(VALIDATION / keep, 6)
