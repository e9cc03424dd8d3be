"""Test accuracy of the presets on real MNIST: plain Keras vs `pipeline train` + `evaluate`.

    python bench/accuracy.py [--source ../shared/data/mnist] [--arch mlp --arch lstm]
                             [--workdir DIR]

For each architecture, in one invocation on the same data: the seed preset fitted with plain
`model.fit` (no tracking), the seed preset through the pipeline, and the default preset through the
pipeline; the pipeline's models are scored by `pipeline evaluate` on the official test set.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from common import Workspace, kept_val_accuracy  # bench/, beside this script

from pipeline.tracking import names

REPO = Path(__file__).resolve().parents[1]
PIPELINE = [sys.executable, "-m", "pipeline"]


def plain_keras(arch: str, data_dir: Path) -> tuple[float, float, float]:
    """(val accuracy, test accuracy, seconds) of the seed preset with bare model.fit."""
    code = f"""
import time, numpy as np
from pipeline import data, fitting
from pipeline.config import train_config
from pipeline.keras_runtime import keras
from pipeline.callbacks import StepLimit
config = train_config({arch!r}, "seed")
dataset = data.load_dataset({str(data_dir)!r})
splits = data.split_train_validation(dataset, config.validation_fraction, config.seed)
config = fitting.fit_epochs_to_steps(config, len(splits.y_train))
keras.utils.set_random_seed(config.seed)
model = fitting.new_model(config, len(splits.y_train))
started = time.perf_counter()
history = model.fit(splits.x_train.astype(np.float32), splits.y_train, epochs=config.epochs,
                    batch_size=config.batch_size, verbose=0,
                    validation_data=(splits.x_val.astype(np.float32), splits.y_val),
                    callbacks=[StepLimit(0, config.max_steps)] if config.max_steps else [])
seconds = time.perf_counter() - started
_, test_accuracy = model.evaluate(dataset.x_test.astype(np.float32), dataset.y_test, verbose=0)
print("RESULT", history.history["val_accuracy"][-1], test_accuracy, seconds)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    return tuple(float(value) for value in re.search(r"RESULT (\S+) (\S+) (\S+)", out).groups())


def pipeline(work: Workspace, arch: str, preset: str) -> tuple[float, float, float]:
    """(val accuracy, test accuracy, seconds) of `pipeline train` then `pipeline evaluate`."""
    trained, evaluated = work.train_and_evaluate("--arch", arch, "--preset", preset)
    return (
        kept_val_accuracy(work, trained),
        evaluated.data.metrics[names.TEST_ACCURACY],
        trained.data.metrics[names.TRAIN_SECONDS],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--arch", action="append", choices=["mlp", "lstm"])
    parser.add_argument("--workdir", type=Path)
    options = parser.parse_args()
    rows = []
    work = Workspace.create(options.workdir, "bench-accuracy-")
    work.pipeline("download", "--source", options.source)
    for arch in options.arch or ["mlp", "lstm"]:
        rows.append(
            (arch, "seed, plain Keras", *plain_keras(arch, work.folder / "data" / "mnist"))
        )
        rows.append((arch, "seed, pipeline", *pipeline(work, arch, "seed")))
        rows.append((arch, "default, pipeline", *pipeline(work, arch, "default")))
        print(
            *(
                f"{row[0]:<5} {row[1]:<18} {row[2]:.4f} {row[3]:.4f} {row[4]:.0f}"
                for row in rows[-3:]
            ),
            sep="\n",
            flush=True,
        )
    print(f"\n{'arch':<6}{'variant':<20}{'val acc':>9}{'test acc':>10}{'train s':>9}")
    for arch, variant, val, test, seconds in rows:
        print(f"{arch:<6}{variant:<20}{val:>9.4f}{test:>10.4f}{seconds:>9.0f}")


if __name__ == "__main__":
    main()
