"""What every metric module shares: the registry, a score that carries its details, and the
small helpers the metrics are built from. The package's __init__ imports the metric modules
and resolves names (get_metric); the modules import only this file."""

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




def check_lengths(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")


SIGNED_METRICS = ("pearson", "spearman", "mcc")  # correlations: [-1, 1]; every other metric is in [0, 1]


def metric_range(name: str) -> tuple[float, float]:
    """The values a metric can take: an interval over seeds is clipped to them."""
    return (-1.0, 1.0) if name in SIGNED_METRICS else (0.0, 1.0)


def is_known_metric(name: str) -> bool:
    return name in METRICS or name.startswith(("f1:", "precision:", "recall:")) or \
        (name.startswith("pass@") and name[5:].isdigit())


# metric -> the optional package (import name) that grades it; see peftbench.extras
NEEDS = {"math_em": "math_verify", "bleu": "sacrebleu", "codebleu": "codebleu"}


def metric_needs(name: str) -> str | None:
    """The optional package a metric grades with: code runs in the sandbox (pyseccomp);
    IFEval's checkers come from lm-evaluation-harness."""
    if executes_code(name):
        return "pyseccomp"
    if name.startswith("ifeval_"):
        return "lm_eval"
    return NEEDS.get(name)


# overlap with the target text (a code task's canonical solution, not its unit tests): the
# systematic comparison's token Jaccard on HumanEval, PEFT-Bench's CodeBLEU
TEXT_OVERLAP = frozenset({"bleu", "codebleu", "token_jaccard"})


def compares_with_target(name: str) -> bool:
    return name in TEXT_OVERLAP


def executes_code(name: str) -> bool:
    """Metrics that run model-generated code (in the sandbox): they need explicit permission."""
    return name.startswith("pass@")
