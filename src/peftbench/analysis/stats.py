"""Statistics over seeds: bootstrap confidence intervals and paired significance tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int


def bootstrap_ci(values: Sequence[float], confidence: float = 0.95, resamples: int = 10_000, seed: int = 0) -> Interval:
    """Mean and percentile-bootstrap interval. One value gives a zero-width interval (no spread known)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if data.size == 1:
        return Interval(float(data[0]), float(data[0]), float(data[0]), 1)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - confidence) / 2
    return Interval(float(data.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)), int(data.size))


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean and Student-t interval of the mean. With the handful of seeds a benchmark can
    afford (3-5), a percentile bootstrap of the mean cannot reach past the smallest and
    largest value and so claims more certainty than three numbers hold; the t interval is
    the usual honest one. One value: a zero-width interval (no spread known)."""
    from scipy.stats import t

    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("t_interval needs at least one value")
    if data.size == 1:
        return Interval(float(data[0]), float(data[0]), float(data[0]), 1)
    half = float(t.ppf(0.5 + confidence / 2, data.size - 1) * data.std(ddof=1) / np.sqrt(data.size))
    return Interval(float(data.mean()), float(data.mean() - half), float(data.mean() + half), int(data.size))


def paired_permutation_test(a: Sequence[float], b: Sequence[float], resamples: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value that A and B (paired: same seeds / examples) have the same mean.

    Under the null each pair's difference is equally likely to have either sign, so the
    test flips signs at random (exactly, over all 2^n flips, when n <= 16).
    """
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if diff.size == 0 or diff.shape != np.asarray(b, dtype=float).shape:
        raise ValueError("paired test needs two equal-length, non-empty sequences")
    observed = abs(diff.mean())
    if diff.size <= 16:
        signs = ((np.arange(2 ** diff.size)[:, None] >> np.arange(diff.size)) & 1) * 2 - 1
    else:
        signs = np.random.default_rng(seed).choice([-1, 1], size=(resamples, diff.size))
    null = np.abs((signs * diff).mean(axis=1))
    return float((null >= observed - 1e-12).mean())


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of a paired t-test (pairs: the same seed). With 3 seeds a sign-flip
    permutation test cannot go below p = 0.25, so it could never call two methods apart;
    the t-test can, when the seeds agree. Differences that are all equal: p = 0 if they are
    not zero (every seed says the same), 1 if they are."""
    from scipy.stats import ttest_rel

    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if diff.size < 2 or diff.shape != np.asarray(b, dtype=float).shape:
        raise ValueError("a paired t-test needs two equal-length sequences of at least 2 values")
    if np.allclose(diff, diff[0]):
        return 1.0 if np.isclose(diff[0], 0.0) else 0.0
    return float(ttest_rel(a, b).pvalue)


def difference_interval(runs: Sequence[Sequence[float]], base: Sequence[float], confidence: float = 0.95) -> Interval:
    """Interval of (a method's mean over seeds) - (the base model), both scored item by item
    on the same items: `runs` is seeds x items, `base` items. Two sources of doubt add up:
    the seeds (t interval of the per-seed differences) and the items (the test set is a
    sample too: normal interval of the per-item differences, averaged over seeds). Seeds
    that all agree on a collapsed model (every answer the majority label) no longer look
    certain: the items still say how much a 2-point edge can be luck."""
    from scipy.stats import norm, t

    diff = np.asarray(runs, dtype=float) - np.asarray(base, dtype=float)[None, :]
    per_seed, per_item = diff.mean(axis=1), diff.mean(axis=0)
    tail = 0.5 + confidence / 2
    seed_half = float(t.ppf(tail, per_seed.size - 1) * per_seed.std(ddof=1) / np.sqrt(per_seed.size)) \
        if per_seed.size > 1 else 0.0
    item_half = float(norm.ppf(tail) * per_item.std(ddof=1) / np.sqrt(per_item.size)) if per_item.size > 1 else 0.0
    half = float(np.hypot(seed_half, item_half))
    mean = float(per_seed.mean())
    return Interval(mean, mean - half, mean + half, int(per_seed.size))
