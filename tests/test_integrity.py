"""Nothing lost, nothing false: the cache, secrets, the champion, the reaper, full disks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import runs
from test_download import one_line_error

TRAIN = ("train", "--arch", "mlp", "--epochs", "1", "--max-steps", "3", "--hidden-size", "8",
         "--no-progress")  # fmt: skip


def tamper_labels(data_dir) -> None:
    path = data_dir / "mnist.npz"
    with np.load(path) as stored:
        arrays = dict(stored)
    arrays["test_labels"][:] = 0
    with path.open("wb") as handle:
        np.savez(handle, **arrays)


def truncate(data_dir) -> None:
    path = data_dir / "mnist.npz"
    path.write_bytes(path.read_bytes()[:1000])


@pytest.mark.parametrize("damage", [tamper_labels, truncate])
def test_a_damaged_cache_is_refused_by_every_stage_and_refetched(cli, data_dir, source, damage):
    damage(data_dir)
    result = cli(*TRAIN)
    assert result.exit_code == 1
    message = one_line_error(result)
    assert "mnist.npz" in message and "pipeline download --force" in message, message
    assert len(runs()) == 0  # no train run on damaged data (the fixture logged no download)
    downloaded = cli("download", "--source", source)
    assert downloaded.exit_code == 0, downloaded.stderr
    assert "Verified" not in downloaded.stdout and "Cached" in downloaded.stdout
    assert cli(*TRAIN).exit_code == 0
