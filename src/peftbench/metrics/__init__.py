"""Metric registry: name -> function(predictions, references) -> score.

Scores are in [0, 1] except correlations ([-1, 1]). A reference may be a list of
acceptable answers (Natural Questions) where the metric says so. Parametrised names
resolve through `get_metric`: `f1:<positive label>`, `pass@<k>`.
"""

from __future__ import annotations

# each module registers its metrics on import
from peftbench.metrics import bbh, classification, code, correlation, ifeval, match, mathematics, text  # noqa: F401
from peftbench.metrics.base import (METRICS, SIGNED_METRICS, Metric, Score, check_lengths,  # noqa: F401
                                    compares_with_target, executes_code, is_known_metric, mean_of_items,
                                    metric_needs, metric_range, normalize_text)
from peftbench.metrics.match import accuracy, exact_match  # noqa: F401  (the two most used, at the package level)


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
