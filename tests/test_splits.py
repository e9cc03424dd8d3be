"""Validation splits: seeded and stratified."""

from __future__ import annotations

import numpy as np

from pipeline import data


def test_validation_split_keeps_each_class_share_within_one_image():
    sizes = [40, 400, 73, 150, 260, 91, 333, 57, 120, 210]
    labels = np.repeat(np.arange(10), sizes).astype(np.uint8)
    rng = np.random.default_rng(5)
    labels = labels[rng.permutation(len(labels))]
    images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    dataset = data.Dataset(images, labels, images[:1], labels[:1], "d", False, "s")
    for seed in range(3):
        splits = data.split_train_validation(dataset, 0.1, seed)
        for label, size in enumerate(sizes):
            held_out = int((splits.y_val == label).sum())
            assert abs(held_out - 0.1 * size) <= 1, (seed, label, held_out)
        assert len(splits.y_val) + len(splits.y_train) == len(labels)
