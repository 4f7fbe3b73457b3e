"""Answers compared as strings: accuracy, exact match (normalised, against any acceptable answer), and
BBH's case-insensitive exact match."""

from __future__ import annotations

from typing import Sequence

from peftbench.metrics.base import METRICS, check_lengths, mean_of_items, normalize_text


@METRICS.decorator("accuracy")
def accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of predictions equal to the reference label (labels compared exactly after strip)."""
    check_lengths(predictions, references)
    return mean_of_items([float(p.strip() == r.strip()) for p, r in zip(predictions, references)])


def _any_of(reference) -> list[str]:
    return [reference] if isinstance(reference, str) else list(reference)


@METRICS.decorator("exact_match")
def exact_match(predictions: Sequence[str], references: Sequence) -> float:
    """Share of predictions equal to (any of) the reference(s) after text normalisation."""
    check_lengths(predictions, references)
    return mean_of_items([
        float(any(normalize_text(p) == normalize_text(r) for r in _any_of(refs)))
        for p, refs in zip(predictions, references)
    ])


@METRICS.decorator("exact_match_ci")
def exact_match_ci(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Exact match ignoring case and surrounding whitespace, punctuation kept (BBH answers
    such as '(A)' or ') ] }' are punctuation)."""
    check_lengths(predictions, references)
    squash = lambda text: " ".join(text.split()).casefold()  # noqa: E731
    return mean_of_items([float(squash(p) == squash(r)) for p, r in zip(predictions, references)])
