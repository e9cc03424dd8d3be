"""The download stage: fetch and verify (fetch.py), then record what was cached as a run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline import fetch
from pipeline.errors import redact

if TYPE_CHECKING:  # the stage imports MLflow only when it records a run
    from pipeline import tracking


def record(
    result: fetch.DownloadResult, tags: dict[str, str] | None = None, *, store: tracking.Store
) -> str:
    """A download run: source, checksums, counts, officialness and the dataset."""
    import numpy as np

    from pipeline import data, tracking
    from pipeline.tracking import names

    store.open()
    tags = {
        names.DATA_DIGEST: result.digest,
        names.OFFICIAL_DATA: str(result.official).lower(),
        **(tags or {}),
    }
    with tracking.run("download", run_name="download", tags=tags) as run:
        run.log_params(
            {
                names.SOURCE_PARAM: redact(result.source)[:500],
                names.OFFICIAL_PARAM: result.official,
            }
        )
        for name, entry in result.files.items():
            stem = name.split(".")[0]
            run.log_params(
                {
                    names.file_md5(stem): entry[fetch.MD5_KEY],
                    names.file_official(stem): entry[fetch.OFFICIAL_KEY],
                }
            )
        run.log_metrics({names.image_count(split): n for split, n in result.counts.items()})
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
