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

A study's best is the best of many trials on the very images that compare it: judged alone, its
gain looks better than it is (the winner's curse). `after_selection` bounds it: it compares every
candidate with the baseline at once, and the p-value and interval are those of the largest of the
candidates' studentized gains (a max-T bootstrap: the images resampled together for every
candidate, each gain centred on its own), so they hold for whichever candidate was chosen.

Per-image results travel as text ("n:" + base64 of the packed bits: 1,970 images in 337
characters), so that they fit an Optuna user attribute or an MLflow tag.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import numpy as np

from pipeline.errors import PipelineError

LEVEL = 0.05  # significance level of a verdict, and 1 - the interval's coverage
RESAMPLES = 10_000
SELECTION_RESAMPLES = 2_000  # each resamples every image of every candidate
BOOTSTRAP_SEED = 0
BETTER, WITHIN_NOISE, WORSE = "better", "within noise", "worse"


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

    @property
    def outcome(self) -> str:
        """better, within noise or worse (beyond noise: at the 5 % level)."""
        return outcome(self.gain, self.p_value)

    def points(self) -> tuple[float, float, float, float]:
        """(gain, low, high) in points, the unit of every sentence and metric, and p."""
        return self.gain * 100, self.low * 100, self.high * 100, self.p_value

    def interval(self) -> str:
        return f"95 % interval {self.low * 100:+.2f} to {self.high * 100:+.2f} pt"

    def evidence(self) -> str:
        """The numbers, in words: '+0.41 pt (95 % interval +0.12 to +0.70 pt, p = 0.004)'."""
        return f"{self.gain * 100:+.2f} pt ({self.interval()}, p = {p_text(self.p_value)})"

    def verdict(self, new: str, baseline: str) -> str:
        """One sentence a user can act on, in one of three outcomes."""
        return sentence(self.outcome, new, baseline, self.evidence())


def p_text(p_value: float) -> str:
    """A p-value as every sentence writes it (two significant digits: 0.004, 2e-18)."""
    return f"{p_value:.2g}"


def sentence(found: str, new: str, baseline: str, evidence: str) -> str:
    """'new beats / is within noise of / is worse than baseline', with the evidence."""
    if found == BETTER:
        return f"{new} beats {baseline} beyond noise by {evidence}"
    if found == WORSE:
        return f"{new} is worse than {baseline} beyond noise, by {evidence}"
    return f"{new} is within noise of {baseline} ({evidence})"


def significant(gain: float, p_value: float) -> bool:
    """A gain at the 5 % level: the new model is better, beyond noise."""
    return outcome(gain, p_value) == BETTER


def outcome(gain: float, p_value: float) -> str:
    """better / worse beyond noise (at the 5 % level), or within noise."""
    if p_value < LEVEL and gain != 0:
        return BETTER if gain > 0 else WORSE
    return WITHIN_NOISE


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
    from scipy.stats import binomtest  # slow to import: only when comparing

    p_value = float(min(1.0, binomtest(new_only, discordant, 0.5).pvalue))
    shares = np.array([new_only, baseline_only, images - discordant]) / images
    counts = np.random.default_rng(BOOTSTRAP_SEED).multinomial(images, shares, RESAMPLES)
    gains = (counts[:, 0] - counts[:, 1]) / images
    low, high = np.quantile(gains, [LEVEL / 2, 1 - LEVEL / 2])
    return Comparison(images, new_only, baseline_only, gain, float(low), float(high), p_value)


def after_selection(
    chosen: np.ndarray, others: list[np.ndarray], baseline: np.ndarray
) -> Comparison:
    """chosen against baseline, when chosen was picked as the best of [chosen, *others] on
    these same images: the gain as observed, its p-value and 95 % interval adjusted for the
    choice.

    Every candidate's per-image difference from the baseline is resampled with the same images
    (a paired bootstrap, fixed seed); the p-value is the share of resamples in which the
    largest |studentized gain| of any candidate, centred on its own, reaches the chosen one's,
    and the interval is the chosen gain plus or minus that largest deviation's 95th percentile
    (it covers every candidate's true gain at once, so the chosen one's too). A significant
    loss needs no such correction (choosing the best makes it look better, not worse): there
    the exact test stands.
    """
    plain = compare(chosen, baseline)
    if plain.new_only + plain.baseline_only == 0 or plain.gain < 0 or not others:
        return plain
    base = np.asarray(baseline, dtype=np.float32)
    rows = [np.asarray(chosen, dtype=np.float32) - base]
    rows += [np.asarray(other, dtype=np.float32) - base for other in others]
    differences = np.stack([row for row in rows if row.any()])  # identical ones say nothing
    images = differences.shape[1]
    means = differences.mean(axis=1)
    spreads = differences.std(axis=1, ddof=1)
    errors = np.where(spreads > 0, spreads, 1.0) / np.sqrt(images)  # all alike: any scale
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    largest = []
    for start in range(0, SELECTION_RESAMPLES, 500):
        count = min(500, SELECTION_RESAMPLES - start)
        drawn = rng.integers(0, images, size=(count, images))  # each row: n images drawn
        drawn += np.arange(count)[:, None] * images
        weights = np.bincount(drawn.ravel(), minlength=count * images).reshape(count, images)
        resampled = (weights.astype(np.float32) @ differences.T) / images
        largest.append(np.abs((resampled - means) / errors).max(axis=1))
    deviations = np.concatenate(largest)
    t_chosen = means[0] / errors[0]
    p_value = float((1 + np.sum(deviations >= t_chosen)) / (1 + len(deviations)))
    margin = float(np.quantile(deviations, 1 - LEVEL)) * float(errors[0])
    # Never more certain than the exact test of the pair alone: with few discordant images the
    # bootstrap's standard errors are rough, and the choice can only cost evidence.
    return Comparison(
        plain.images,
        plain.new_only,
        plain.baseline_only,
        plain.gain,
        min(plain.low, plain.gain - margin),
        max(plain.high, plain.gain + margin),
        max(p_value, plain.p_value),
    )


def pack(correct: np.ndarray) -> str:
    """Per-image correctness as compact text (see the module's docstring)."""
    correct = np.asarray(correct, dtype=bool)
    bits = base64.b64encode(np.packbits(correct).tobytes()).decode("ascii")
    return f"{len(correct)}:{bits}"


def unpack(text: str) -> np.ndarray:
    """The booleans pack() wrote; a record cut short, or not pack()'s at all, is refused with a
    PipelineError saying what is wrong (never padded with wrong answers)."""
    count, colon, bits = str(text).partition(":")
    if not colon or not count.isdigit():
        raise PipelineError("not an image count and packed bits")
    try:
        packed = np.frombuffer(base64.b64decode(bits, validate=True), dtype=np.uint8)
    except (binascii.Error, ValueError):
        raise PipelineError("its packed bits are not base64") from None
    if len(packed) != -(-int(count) // 8):
        raise PipelineError(f"{8 * len(packed)} bits for {count} images: cut short or altered")
    return np.unpackbits(packed, count=int(count)).astype(bool)
