"""Metric registry: name -> function(predictions, references) -> score.

Scores are in [0, 1] except correlations ([-1, 1]). A reference may be a list of
acceptable answers (Natural Questions) where the metric says so. Parametrised names
resolve through `get_metric`: `f1:<positive label>`, `pass@<k>`.
"""

from __future__ import annotations

import re
import string
from typing import Callable, Sequence

from peftbench.registry import Registry

Metric = Callable[[Sequence[str], Sequence[str]], float]
METRICS: Registry[Metric] = Registry("metric")

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


class Score(float):
    """A metric's value that also says how it was reached (`details`: plain data, e.g.
    pass@k's count of each sandbox verdict). It is a float wherever a number is wanted."""

    def __new__(cls, value: float, details: dict):
        score = super().__new__(cls, value)
        score.details = details
        return score


def normalize_text(text: str) -> str:
    """Lower-case, drop punctuation, collapse whitespace (SQuAD-style normalisation)."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def mean_of_items(values: Sequence[float]) -> "Score":
    """The mean of per-item scores, carrying them (`details["per_item"]`): a difference
    between two models on the same items can then be tested item by item."""
    values = [float(v) for v in values]
    return Score(sum(values) / len(values) if values else 0.0, {"per_item": values})


_mean = mean_of_items


def check_lengths(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")


@METRICS.decorator("accuracy")
def accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of predictions equal to the reference label (labels compared exactly after strip)."""
    check_lengths(predictions, references)
    return _mean([float(p.strip() == r.strip()) for p, r in zip(predictions, references)])


def _any_of(reference) -> list[str]:
    return [reference] if isinstance(reference, str) else list(reference)


@METRICS.decorator("exact_match")
def exact_match(predictions: Sequence[str], references: Sequence) -> float:
    """Share of predictions equal to (any of) the reference(s) after text normalisation."""
    check_lengths(predictions, references)
    return _mean([
        float(any(normalize_text(p) == normalize_text(r) for r in _any_of(refs)))
        for p, refs in zip(predictions, references)
    ])


def get_metric(name: str) -> Metric:
    """A registered metric, or a parametrised one: `f1:<positive label>`, `pass@<k>`."""
    kind, _, label = name.partition(":")
    if label and kind in ("f1", "precision", "recall"):
        from peftbench.metrics.classification import of_one_label

        return of_one_label(kind, label)
    if name.startswith("pass@") and name not in METRICS:
        from peftbench.metrics.code import pass_at_k_metric

        return pass_at_k_metric(int(name[5:]))
    return METRICS.get(name)


SIGNED_METRICS = ("pearson", "spearman", "mcc")  # correlations: [-1, 1]; every other metric is in [0, 1]


def metric_range(name: str) -> tuple[float, float]:
    """The values a metric can take: an interval over seeds is clipped to them."""
    return (-1.0, 1.0) if name in SIGNED_METRICS else (0.0, 1.0)


def is_known_metric(name: str) -> bool:
    return name in METRICS or name.startswith(("f1:", "precision:", "recall:")) or \
        (name.startswith("pass@") and name[5:].isdigit())


def executes_code(name: str) -> bool:
    """Metrics that run model-generated code (in the sandbox): they need explicit permission."""
    return name.startswith("pass@")


# each module registers its metrics on import
from peftbench.metrics import bbh, classification, code, correlation, ifeval, mathematics, text as _text  # noqa: E402,F401


@METRICS.decorator("exact_match_ci")
def exact_match_ci(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Exact match ignoring case and surrounding whitespace, punctuation kept (BBH answers
    such as '(A)' or ') ] }' are punctuation)."""
    check_lengths(predictions, references)
    squash = lambda text: " ".join(text.split()).casefold()  # noqa: E731
    return _mean([float(squash(p) == squash(r)) for p, r in zip(predictions, references)])
