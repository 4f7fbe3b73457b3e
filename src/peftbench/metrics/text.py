"""Text overlap metrics: corpus BLEU (sacrebleu) and token Jaccard similarity."""

from __future__ import annotations

from typing import Sequence

from peftbench.extras import require
from peftbench.metrics.base import METRICS, check_lengths, normalize_text


@METRICS.decorator("bleu")
def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU with sacrebleu's standard settings (13a tokenizer), scaled to [0, 1]."""
    sacrebleu = require("sacrebleu", "the bleu metric")
    check_lengths(predictions, references)
    return sacrebleu.corpus_bleu(list(predictions), [list(references)]).score / 100


def jaccard(a: str, b: str) -> float:
    left, right = set(normalize_text(a).split()), set(normalize_text(b).split())
    return len(left & right) / len(left | right) if left | right else 1.0


@METRICS.decorator("token_jaccard")
def token_jaccard(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean Jaccard similarity of the normalised token sets."""
    check_lengths(predictions, references)
    return sum(jaccard(p, r) for p, r in zip(predictions, references)) / len(references) if references else 0.0


def token_f1_one(prediction: str, reference: str) -> float:
    """SQuAD token F1: overlap of normalised tokens, counted with multiplicity."""
    from collections import Counter

    pred, ref = normalize_text(prediction).split(), normalize_text(reference).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref:
        return float(pred == ref)
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


@METRICS.decorator("token_f1")
def token_f1(predictions: Sequence[str], references: Sequence) -> float:
    """SQuAD/ReCoRD token F1, the best over the acceptable answers."""
    check_lengths(predictions, references)
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    return sum(max((token_f1_one(p, r) for r in rs), default=0.0) for p, rs in zip(predictions, refs)) / len(refs) \
        if refs else 0.0
