"""Pearson and Spearman correlation of numeric predictions (GLUE's STS-B)."""

from __future__ import annotations

import math
import re
from typing import Sequence

from peftbench.metrics.base import METRICS, check_lengths

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def to_number(text: str) -> float:
    """The first number in a generation; an answer with none scores as 0 (lowest similarity)."""
    match = _NUMBER.search(text)
    return float(match.group()) if match else 0.0


def pearson_r(xs: Sequence[float], ys: Sequence[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    return cov / (sx * sy) if sx and sy else 0.0  # a constant prediction carries no signal


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank (as scipy.stats.rankdata)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


@METRICS.decorator("pearson")
def pearson(predictions: Sequence[str], references: Sequence[str]) -> float:
    check_lengths(predictions, references)
    return pearson_r([to_number(p) for p in predictions], [to_number(r) for r in references])


@METRICS.decorator("spearman")
def spearman(predictions: Sequence[str], references: Sequence[str]) -> float:
    check_lengths(predictions, references)
    return pearson_r(ranks([to_number(p) for p in predictions]), ranks([to_number(r) for r in references]))
