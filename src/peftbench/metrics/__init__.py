"""Metric registry: name -> function(predictions, references) -> score in [0, 1]."""

from __future__ import annotations

import re
import string
from typing import Callable, Sequence

from peftbench.registry import Registry

Metric = Callable[[Sequence[str], Sequence[str]], float]
METRICS: Registry[Metric] = Registry("metric")

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize_text(text: str) -> str:
    """Lower-case, drop punctuation, collapse whitespace (SQuAD-style normalisation)."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _check(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")


@METRICS.decorator("accuracy")
def accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of predictions equal to the reference label (labels compared exactly after strip)."""
    _check(predictions, references)
    return _mean([float(p.strip() == r.strip()) for p, r in zip(predictions, references)])


@METRICS.decorator("exact_match")
def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of predictions equal to the reference after text normalisation."""
    _check(predictions, references)
    return _mean([float(normalize_text(p) == normalize_text(r)) for p, r in zip(predictions, references)])


# Metrics that execute code register themselves on import; they need the sandbox.
CODE_METRICS = {"pass@1"}
from peftbench.metrics import code  # noqa: E402,F401
