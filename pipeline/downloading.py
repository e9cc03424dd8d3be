"""The download stage: fetch and verify (fetch.py), then record what was cached as a run."""

from __future__ import annotations

from pipeline import fetch
from pipeline.config import DataConfig
from pipeline.errors import redact


def run_download(
    config: DataConfig,
    force: bool = False,
    progress: fetch.Progress | None = None,
    tags: dict[str, str] | None = None,
) -> tuple[fetch.DownloadResult, str | None]:
    """Fetch, verify and cache; log a download run unless a verified cache made it a no-op."""
    result = fetch.download(config, force=force, progress=progress)
    if result.skipped:
        return result, None
    return result, record(result, tags)


def record(result: fetch.DownloadResult, tags: dict[str, str] | None = None) -> str:
    """A download run: source, checksums, counts, officialness and the dataset."""
    import numpy as np

    from pipeline import data, tracking
    from pipeline.tracking import names

    tracking.setup()
    tags = {
        names.DATA_DIGEST: result.digest,
        names.OFFICIAL_DATA: str(result.official).lower(),
        **(tags or {}),
    }
    with tracking.run("download", run_name="download", tags=tags) as run:
        run.log_params({"source": redact(result.source)[:500], "official": result.official})
        for name, entry in result.files.items():
            stem = name.split(".")[0]
            run.log_params({f"md5.{stem}": entry["md5"], f"official.{stem}": entry["official"]})
        run.log_metrics({f"{split}_count": count for split, count in result.counts.items()})
        kind = "the official MNIST files" if result.official else "NOT the official MNIST files"
        how = "Verified the cached" if result.skipped else "Downloaded and verified"
        run.describe(
            f"{how} MNIST from {redact(result.source)} ({kind}): "
            + ", ".join(f"{count} {split} images" for split, count in result.counts.items())
            + f"; dataset digest {result.digest}, tagged on every run trained on it."
        )
        run.log_dict(
            {"files": result.files, "counts": result.counts, "class_counts": result.class_counts},
            "download_manifest.json",
        )
        with np.load(result.data_dir / data.CACHE_NAME) as arrays:
            tracking.log_dataset(
                arrays["train_images"],
                arrays["train_labels"],
                names.DATASET_DOWNLOAD,
                result.digest,
                result.data_dir,
                context="download",
            )
        return run.run_id
