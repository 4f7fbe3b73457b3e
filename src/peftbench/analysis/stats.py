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
