"""Label metrics for classification tasks whose labels are words (PEFT-Bench style).

Predictions that are not a known label count as their own (wrong) class, as sklearn does
with labels present only in the predictions; nothing is silently mapped to a label.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

from peftbench.metrics.base import METRICS, check_lengths


def _label(text: str) -> str:
    return text.strip().lower()


def per_class(predictions: Sequence[str], references: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """label -> (precision, recall, f1), over every label seen in references or predictions."""
    check_lengths(predictions, references)
    preds, refs = [_label(p) for p in predictions], [_label(r) for r in references]
    out = {}
    for label in sorted(set(refs) | set(preds)):
        tp = sum(p == label and r == label for p, r in zip(preds, refs))
        predicted, actual = preds.count(label), refs.count(label)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[label] = (precision, recall, f1)
    return out


def _macro(index: int):
    def metric(predictions: Sequence[str], references: Sequence[str]) -> float:
        scores = per_class(predictions, references)
        return sum(s[index] for s in scores.values()) / len(scores) if scores else 0.0

    return metric


METRICS.register("macro_precision", _macro(0))
METRICS.register("macro_recall", _macro(1))
METRICS.register("macro_f1", _macro(2))


def of_one_label(kind: str, positive: str):
    """F1, precision or recall of one positive label: GLUE's F1 for MRPC and QQP (the
    paraphrase class), PEFT-Bench's binary F1 (the second label of each task), and the
    systematic comparison's sentiment F1 with its precision and recall (positive)."""
    index = {"precision": 0, "recall": 1, "f1": 2}[kind]

    def metric(predictions: Sequence[str], references: Sequence[str]) -> float:
        return per_class(predictions, references).get(_label(positive), (0.0, 0.0, 0.0))[index]

    return metric


def binary_f1(positive: str):
    return of_one_label("f1", positive)


@METRICS.decorator("mcc")
def matthews_corrcoef(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Matthews correlation (GLUE's CoLA metric), multi-class form (Gorodkin 2004)."""
    check_lengths(predictions, references)
    preds, refs = [_label(p) for p in predictions], [_label(r) for r in references]
    n = len(refs)
    correct = sum(p == r for p, r in zip(preds, refs))
    pred_counts, ref_counts = Counter(preds), Counter(refs)
    labels = set(pred_counts) | set(ref_counts)
    covariance = correct * n - sum(pred_counts[k] * ref_counts[k] for k in labels)
    spread_pred = n * n - sum(c * c for c in pred_counts.values())
    spread_ref = n * n - sum(c * c for c in ref_counts.values())
    denominator = math.sqrt(spread_pred * spread_ref)
    return covariance / denominator if denominator else 0.0


def invalid_as_wrong(predictions: Sequence[str], references: Sequence[str], labels: Sequence[str]) -> tuple[list[str], int]:
    """PEFT-Bench's rule: an answer outside `labels` is replaced by a wrong label before
    scoring (of two labels the other one; of more, the first that is not the reference), so
    it always counts against the method; returns the answers and how many were replaced."""
    known = [_label(label) for label in labels]
    out, replaced = [], 0
    for prediction, reference in zip(predictions, references):
        if _label(prediction) in known:
            out.append(prediction)
            continue
        replaced += 1
        out.append(next(label for label in labels if _label(label) != _label(reference)))
    return out, replaced
