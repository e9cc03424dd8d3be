"""The download stage: mirrors, local sources, validation errors, idempotence, the MLflow run."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import (
    FILE_NAMES,
    assert_failed_cleanly,
    closed_port_url,
    corrupt,
    one_line_error,
    require_shared_mnist,
    runs,
    write_mnist_folder,
)

from pipeline import fetch
from pipeline.config import DataConfig


def test_local_source_is_cached_and_logged(cli, workdir, source):
    result = cli("download", "--source", source)
    assert result.exit_code == 0, result.stderr
    assert "300 training and 100 test images" in result.stdout
    assert "NOT the official" in result.stdout
    data_dir = workdir / "data" / "mnist"
    manifest = json.loads((data_dir / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 300, "test": 100}
    assert manifest["official"] is False
    assert sorted(p.name for p in (data_dir / "raw").iterdir()) == sorted(FILE_NAMES.values())
    frame = runs()
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["tags.pipeline.stage"] == "download"
    assert row["tags.pipeline.data_digest"] == manifest["digest"]
    assert row["params.official"] == "False"
    assert row["metrics.train_count"] == 300
    md5 = hashlib.md5((source / FILE_NAMES["test-labels"]).read_bytes()).hexdigest()
    assert row["params.md5.t10k-labels-idx1-ubyte"] == md5

    import mlflow

    inputs = mlflow.get_run(row["run_id"]).inputs.dataset_inputs
    assert [entry.dataset.digest for entry in inputs] == [manifest["digest"]]
    assert [entry.dataset.name for entry in inputs] == ["mnist-train-full"]  # not a split


def test_second_call_is_a_no_op(cli, workdir, source):
    assert cli("download", "--source", source).exit_code == 0
    raw = workdir / "data" / "mnist" / "raw" / FILE_NAMES["train-images"]
    before = raw.stat().st_mtime_ns
    # The source is gone: a second call must not need it.
    for path in source.iterdir():
        path.unlink()
    result = cli("download", "--source", source)
    assert result.exit_code == 0, result.stderr
    assert "nothing fetched" in result.stdout
    assert raw.stat().st_mtime_ns == before
    assert len(runs()) == 1


def test_a_cache_from_another_source_is_fetched_again(cli, workdir, source, tmp_path):
    """--source B over a cache that came from A fetches B: it never calls A's data B's."""
    other = write_mnist_folder(tmp_path / "other", train=310)
    assert cli("download", "--source", source).exit_code == 0
    result = cli("download", "--source", other)
    assert result.exit_code == 0, result.stderr
    assert "Cached 310 training" in result.stdout and "nothing fetched" not in result.stdout
    again = cli("download", "--source", other)
    assert "nothing fetched" in again.stdout  # the same source: verified, not fetched
    assert "nothing fetched" in cli("download").stdout  # no --source: any verified cache


def test_tampered_cache_is_fetched_again(cli, workdir, source):
    assert cli("download", "--source", source).exit_code == 0
    raw = workdir / "data" / "mnist" / "raw" / FILE_NAMES["train-labels"]
    raw.write_bytes(b"tampered")
    result = cli("download", "--source", source)
    assert result.exit_code == 0
    assert "nothing fetched" not in result.stdout
    assert raw.read_bytes() == (source / FILE_NAMES["train-labels"]).read_bytes()


def test_mirror_fallback_over_http(workdir, source, http_folder):
    """One mirror refuses, one serves 404s, the third serves the files."""
    empty = workdir / "empty"
    empty.mkdir()
    mirrors = (closed_port_url(), http_folder(empty), http_folder(source))
    checksums = {
        name: hashlib.md5((source / name).read_bytes()).hexdigest() for name in FILE_NAMES.values()
    }
    config = DataConfig(data_dir=workdir / "data", mirrors=mirrors, retries=2, timeout_seconds=5)
    result = fetch.download(config, checksums=checksums)
    assert result.official is True
    assert {entry["origin"].rsplit("/", 1)[0] + "/" for entry in result.files.values()} == {
        mirrors[2]
    }
    assert result.counts == {"train": 300, "test": 100}


def test_http_source(cli, workdir, source, http_folder):
    result = cli("download", "--source", http_folder(source))
    assert result.exit_code == 0, result.stderr
    assert (workdir / "data" / "mnist" / "mnist.npz").is_file()


def test_mirror_checksum_mismatch(cli, workdir, source, http_folder):
    """A mirror serving files that are not the official ones is refused."""
    result = cli("download", "--mirror", http_folder(source))
    assert_failed_cleanly(
        result, "checksum mismatch", FILE_NAMES["train-images"], data_dir=workdir / "data"
    )


def test_unreachable_mirrors(cli, workdir):
    dead = [closed_port_url(), closed_port_url()]
    result = cli("download", "--mirror", dead[0], "--mirror", dead[1])
    assert_failed_cleanly(result, dead[0], dead[1], "--source", data_dir=workdir / "data")


@pytest.mark.parametrize(
    "key, how, fragment",
    [
        ("train-images", "truncated", "truncated gzip"),
        ("test-labels", "not gzip", "corrupt gzip"),
        ("train-images", "wrong magic", "wrong magic number"),
        ("train-images", "short payload", "bytes after decompression"),
        ("train-labels", "count mismatch", "299 labels but"),
        ("train-labels", "bad label", "label 12 is outside 0-9"),
        ("test-images", "wrong size", "20x20"),
    ],
)
def test_invalid_files_are_refused(cli, workdir, source, key, how, fragment):
    corrupt(source, key, how)
    result = cli("download", "--source", source)
    assert_failed_cleanly(result, fragment, data_dir=workdir / "data")


def test_missing_file_in_source(cli, workdir, source):
    (source / FILE_NAMES["test-labels"]).unlink()
    result = cli("download", "--source", source)
    assert_failed_cleanly(result, FILE_NAMES["test-labels"], "missing", data_dir=workdir / "data")


def test_missing_source_folder(cli, workdir, tmp_path):
    result = cli("download", "--source", tmp_path / "nowhere")
    assert_failed_cleanly(result, "no such folder", data_dir=workdir / "data")


def test_source_checksum_file_is_enforced(cli, workdir, source):
    lines = [f"{'0' * 64}  {FILE_NAMES['train-images']}"]
    (source / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    result = cli("download", "--source", source)
    assert_failed_cleanly(
        result, FILE_NAMES["train-images"], "checksum mismatch", data_dir=workdir / "data"
    )


def test_unwritable_data_dir(cli, workdir, source):
    blocker = workdir / "blocker"
    blocker.write_text("a file where a folder should be")
    result = cli("download", "--source", source, "--data-dir", blocker / "mnist")
    assert result.exit_code != 0
    assert "is not writable" in one_line_error(result)
    assert blocker.read_text() == "a file where a folder should be"
    assert len(runs()) == 0


def test_failed_refetch_keeps_the_verified_cache(cli, workdir, source):
    assert cli("download", "--source", source).exit_code == 0
    cache = workdir / "data" / "mnist" / "mnist.npz"
    before = cache.read_bytes()
    corrupt(source, "train-images", "truncated")
    result = cli("download", "--source", source, "--force")
    assert result.exit_code != 0
    assert cache.read_bytes() == before
    assert not list((workdir / "data" / "mnist").glob(".staging-*"))


@pytest.mark.slow
def test_shared_real_mnist(cli, workdir):
    shared = require_shared_mnist()
    result = cli("download", "--source", shared)
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((workdir / "data" / "mnist" / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 19690, "test": 10000}
    assert manifest["files"]["t10k-images-idx3-ubyte.gz"]["md5"] == (
        "9fb629c4189551a2d022fa330f9573f3"
    )
    assert manifest["files"]["t10k-labels-idx1-ubyte.gz"]["md5"] == (
        "ec29112dd5afa0611ce80d1b7f02629c"
    )
    assert manifest["files"]["t10k-images-idx3-ubyte.gz"]["official"] is True
    assert manifest["official"] is False
    assert manifest["class_counts"]["train"]["1"] == 2248
    row = runs().iloc[0]
    assert row["tags.pipeline.data_digest"] == manifest["digest"]
    assert row["tags.pipeline.official_data"] == "false"


def test_an_unreadable_idx_file_is_named_as_unreadable_not_corrupt(tmp_path):
    from pipeline import data
    from pipeline.errors import PipelineError

    with pytest.raises(PipelineError, match=r"^nowhere\.gz: cannot be read"):
        data.parse_idx(tmp_path / "nowhere.gz", "labels")
