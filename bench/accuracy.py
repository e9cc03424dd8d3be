"""Test accuracy of the presets on real MNIST: plain Keras vs `pipeline train` + `evaluate`.

    python bench/accuracy.py [--source ../shared/data/mnist] [--arch mlp --arch lstm]

For each architecture, in one invocation on the same data: the seed preset fitted with plain
`model.fit` (no tracking), the seed preset through the pipeline, and the default preset through the
pipeline; the pipeline's models are scored by `pipeline evaluate` on the official test set.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

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
                    callbacks=[StepLimit(0, config.max_steps)])
seconds = time.perf_counter() - started
_, test_accuracy = model.evaluate(dataset.x_test.astype(np.float32), dataset.y_test, verbose=0)
print("RESULT", history.history["val_accuracy"][-1], test_accuracy, seconds)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    return tuple(float(value) for value in re.search(r"RESULT (\S+) (\S+) (\S+)", out).groups())


def run(args: list[str], workdir: Path, env: dict) -> str:
    out = subprocess.run([*PIPELINE, *args], capture_output=True, text=True, cwd=workdir, env=env)
    if out.returncode:
        raise SystemExit(f"pipeline {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return out.stdout


def pipeline(arch: str, preset: str, workdir: Path, env: dict) -> tuple[float, float, float]:
    """(val accuracy, test accuracy, seconds) of `pipeline train` then `pipeline evaluate`."""
    trained = run(["train", "--arch", arch, "--preset", preset, "--no-progress"], workdir, env)
    run_id = re.search(r"run\s+([0-9a-f]{32})", trained).group(1)
    seconds = float(re.search(r" in ([\d.]+) s ", trained).group(1))
    evaluated = run(["evaluate", "--run-id", run_id, "--no-register"], workdir, env)
    test = float(re.search(r"test_accuracy (\S+)", evaluated).group(1))
    val = float(re.search(r"val_accuracy (\S+)", trained).group(1))
    return val, test, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--arch", action="append", choices=["mlp", "lstm"])
    options = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
        env.pop("MLFLOW_RUN_ID", None)
        run(["download", "--source", options.source], workdir, env)
        for arch in options.arch or ["mlp", "lstm"]:
            rows.append(
                (arch, "seed, plain Keras", *plain_keras(arch, workdir / "data" / "mnist"))
            )
            rows.append((arch, "seed, pipeline", *pipeline(arch, "seed", workdir, env)))
            rows.append((arch, "default, pipeline", *pipeline(arch, "default", workdir, env)))
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
