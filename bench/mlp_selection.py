"""Can validation accuracy pick an MLP that is better on test than the default preset?

    python bench/mlp_selection.py [--configs 16] [--seed 0]

Trains, on real MNIST (data from --source, cached in a temporary folder), the default preset and
--configs - 1 random points of the default search space (learning rate and hidden size drawn
log-uniformly from the tune ranges; constant learning rate, batch 128, 20 epochs, as a curve-mode
trial trains them), with the split and initialisation of --seed. After every epoch it records the
validation accuracy and, for this benchmark only, the test accuracy: the tune objective never
reads the test set. Prints each configuration's best validation epoch and that epoch's test
accuracy, then what the study's rule (best validation accuracy over configurations and epochs
2-20, as `best_epoch`) picks, against the preset and the best test accuracy any epoch reached.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from pipeline import data
from pipeline.architectures import REGISTRY
from pipeline.config import train_config
from pipeline.tune_config import LEARNING_RATE_RANGE
from pipeline.tuning.trials import best_epoch

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 20


def curves(lr: float, hidden: int, seed: int, splits, dataset) -> tuple[list, list]:
    """Per-epoch validation and test accuracy of one configuration."""
    from pipeline.fitting import clear_state, new_model
    from pipeline.keras_runtime import keras

    clear_state()
    config = train_config("mlp", "default", learning_rate=lr, hidden_size=hidden, seed=seed)
    keras.utils.set_random_seed(seed)
    model = new_model(config, len(splits.y_train))
    val, test = [], []
    x_test = dataset.x_test.astype(np.float32)

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            val.append(float(logs["val_accuracy"]))
            predicted = self.model.predict(x_test, batch_size=1024, verbose=0).argmax(axis=1)
            test.append(float((predicted == dataset.y_test).mean()))

    model.fit(
        splits.x_train.astype(np.float32),
        splits.y_train,
        batch_size=config.batch_size,
        epochs=EPOCHS,
        validation_data=(splits.x_val.astype(np.float32), splits.y_val),
        shuffle=True,
        verbose=0,
        callbacks=[Record()],
    )
    return val, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--configs", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    rng = np.random.default_rng(100 + options.seed)

    def log_uniform(low: float, high: float) -> float:
        return math.exp(rng.uniform(math.log(low), math.log(high)))

    preset = train_config("mlp", "default")
    configs = [(preset.learning_rate, preset.hidden_size)] + [
        (log_uniform(*LEARNING_RATE_RANGE), round(log_uniform(*REGISTRY["mlp"].hidden_sizes)))
        for _ in range(options.configs - 1)
    ]
    with tempfile.TemporaryDirectory(prefix="bench-selection-") as tmp:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db"}
        download = ["download", "--source", options.source, "--data-dir", tmp]
        subprocess.run(
            [sys.executable, "-m", "pipeline", *download],
            check=True,
            capture_output=True,
            cwd=tmp,
            env=env,
        )
        dataset = data.load_dataset(Path(tmp))
    splits = data.split_train_validation(dataset, preset.validation_fraction, options.seed)
    print("| learning_rate | hidden_size | best val epoch | val | test there | test after 20 |")
    print("| --- | --- | --- | --- | --- | --- |")
    rows = []
    for lr, hidden in configs:
        val, test = curves(lr, hidden, options.seed, splits, dataset)
        epoch = best_epoch(val, (2, EPOCHS))
        rows.append((val[epoch - 1], epoch, test[epoch - 1], lr, hidden, max(test)))
        print(
            f"| {lr:.2e} | {hidden} | {epoch} | {val[epoch - 1]:.4f} | {test[epoch - 1]:.4f} | "
            f"{test[-1]:.4f} |",
            flush=True,
        )
    picked = max(rows, key=lambda row: (row[0], row[1]))
    print(
        f"\nthe rule picks lr {picked[3]:.2e}, hidden {picked[4]}, {picked[1]} epochs: "
        f"val {picked[0]:.4f}, test {picked[2]:.4f}; the preset: val {rows[0][0]:.4f}, "
        f"test {rows[0][2]:.4f}; best test of any configuration and epoch: "
        f"{max(row[5] for row in rows):.4f}"
    )


if __name__ == "__main__":
    main()
