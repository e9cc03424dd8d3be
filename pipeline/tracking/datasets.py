"""Datasets as mlflow.data inputs carrying the house digest."""

from __future__ import annotations

import os
import time
import warnings


def log_dataset(features, targets, name: str, digest: str, source, context: str) -> None:
    """Attach arrays to the active run as an mlflow.data input carrying the house digest."""
    import mlflow
    from mlflow.data.numpy_dataset import from_numpy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "source can be interpreted in ways"
        dataset = from_numpy(
            features=features,
            targets=targets,
            name=name,
            digest=digest,
            source=os.path.abspath(source),
        )
    for attempt in range(3):
        try:
            mlflow.log_input(dataset, context=context)
            return
        except mlflow.exceptions.MlflowException as error:
            # Two workers logging one dataset at once race on its row in a server's database
            # (a unique-key violation for the later one); the row exists then: link to it.
            if "unique" not in str(error).lower() or attempt == 2:
                raise
            time.sleep(0.5)
