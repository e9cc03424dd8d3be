"""What a training step costs at each hidden size: the reason the LSTM's search ranges are
narrower than the MLP's (pipeline/architectures.py: hidden_sizes, hidden_size_limit).

    python bench/widths.py [--arch mlp --arch lstm] [--widths 128 256 512 1024 2048]
                           [--images 2048]

For each architecture and width, in one process: the default preset's model, compiled as the
pipeline compiles it, fitted for one untimed epoch (graph building) and then one timed epoch on
the same images at the preset's batch size. Pixel values do not change a step's cost, so the
images are random. Prints milliseconds per 1,000 images and the ratio to the preset's width;
compare ratios, not milliseconds, across machines.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pipeline.config import train_config
from pipeline.models import build_model, compile_model


def seconds_per_epoch(arch: str, width: int, images: np.ndarray, labels: np.ndarray) -> float:
    config = train_config(arch, hidden_size=width)
    steps = -(-len(images) // config.batch_size)
    model = compile_model(build_model(config), config, 2 * steps)
    model.fit(images, labels, batch_size=config.batch_size, epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(images, labels, batch_size=config.batch_size, epochs=1, verbose=0)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", choices=("mlp", "lstm"))
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 256, 512, 1024, 2048])
    parser.add_argument("--images", type=int, default=2048)
    options = parser.parse_args()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(options.images, 28, 28)).astype("float32")
    labels = rng.integers(0, 10, size=options.images)
    print("| arch | hidden size | ms per 1,000 images | ratio to the preset's width |")
    print("| --- | --- | --- | --- |")
    for arch in options.arch or ["mlp", "lstm"]:
        preset_width = train_config(arch).hidden_size
        widths = sorted({preset_width, *options.widths})
        cost = {width: seconds_per_epoch(arch, width, images, labels) for width in widths}
        for width in widths:
            print(
                f"| {arch} | {width} | {1e6 * cost[width] / options.images:.0f} "
                f"| {cost[width] / cost[preset_width]:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
