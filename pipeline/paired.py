"""Paired comparison of two models on the same images: the gain in accuracy, its 95 % interval
and a p-value, from which images each got right.

The p-value is exact McNemar's: only the images the two models disagree on carry evidence, and
under "no difference" each of those m discordant images is equally likely to favour either model,
so the count b that favours the new one is Binomial(m, 1/2). It stays exact with the few
discordant images two close models have, where a normal approximation does not.

The interval is a paired bootstrap: resampling the n images with replacement only moves the counts
of the three kinds of image (new right only, baseline right only, the rest), so it draws those
counts from a multinomial, 10,000 times, and takes the 2.5th and 97.5th percentiles of the gain
(b - c) / n. Unlike an interval that inverts the exact test (which holds m fixed), it carries the
uncertainty of how many images the two disagree on. Its seed is fixed, so one record always gives
one interval. A verdict rests on the p-value.

Per-image results travel as text ("n:" + base64 of the packed bits: 1,969 images in 337
characters), so that they fit an Optuna user attribute or an MLflow tag.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np

LEVEL = 0.05  # significance level of a verdict, and 1 - the interval's coverage
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Comparison:
    """A new model against a baseline on the same n images (gains as accuracy fractions)."""

    images: int
    new_only: int  # images only the new model got right
    baseline_only: int  # images only the baseline got right
    gain: float
    low: float
    high: float
    p_value: float

    @property
    def significant(self) -> bool:
        return significant(self.gain, self.p_value)

    def interval(self) -> str:
        return f"95 % interval {self.low * 100:+.2f} to {self.high * 100:+.2f} pt"

    def evidence(self) -> str:
        """The numbers, in words: '+0.41 pt (95 % interval +0.12 to +0.70 pt, p = 0.004)'."""
        return f"{self.gain * 100:+.2f} pt ({self.interval()}, p = {self.p_value:.2g})"

    def verdict(self, new: str, baseline: str) -> str:
        """One sentence a user can act on."""
        if self.significant:
            return f"{new} beats {baseline} by {self.evidence()}"
        return f"{new} does not beat {baseline} beyond noise ({self.evidence()})"


def significant(gain: float, p_value: float) -> bool:
    """A gain at the 5 % level: the new model is better, beyond noise."""
    return gain > 0 and p_value < LEVEL


def compare(new: np.ndarray, baseline: np.ndarray) -> Comparison:
    """Exact McNemar comparison of per-image correctness (booleans, same images, same order)."""
    new, baseline = np.asarray(new, dtype=bool), np.asarray(baseline, dtype=bool)
    if new.shape != baseline.shape or new.ndim != 1 or len(new) == 0:
        raise ValueError(
            f"a paired comparison needs results on the same images (got {new.shape} and "
            f"{baseline.shape})"
        )
    images = len(new)
    new_only = int(np.sum(new & ~baseline))
    baseline_only = int(np.sum(baseline & ~new))
    discordant = new_only + baseline_only
    gain = (new_only - baseline_only) / images
    if discordant == 0:  # the same answers: no evidence either way
        return Comparison(images, 0, 0, 0.0, 0.0, 0.0, 1.0)
    from scipy.stats import binomtest  # 0.3 s to import: only when comparing

    p_value = float(min(1.0, binomtest(new_only, discordant, 0.5).pvalue))
    shares = np.array([new_only, baseline_only, images - discordant]) / images
    counts = np.random.default_rng(BOOTSTRAP_SEED).multinomial(images, shares, RESAMPLES)
    gains = (counts[:, 0] - counts[:, 1]) / images
    low, high = np.quantile(gains, [LEVEL / 2, 1 - LEVEL / 2])
    return Comparison(images, new_only, baseline_only, gain, float(low), float(high), p_value)


def pack(correct: np.ndarray) -> str:
    """Per-image correctness as compact text (see the module's docstring)."""
    correct = np.asarray(correct, dtype=bool)
    bits = base64.b64encode(np.packbits(correct).tobytes()).decode("ascii")
    return f"{len(correct)}:{bits}"


def unpack(text: str) -> np.ndarray:
    """The booleans pack() wrote."""
    count, _, bits = text.partition(":")
    packed = np.frombuffer(base64.b64decode(bits), dtype=np.uint8)
    return np.unpackbits(packed, count=int(count)).astype(bool)
