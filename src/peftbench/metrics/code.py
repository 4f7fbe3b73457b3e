"""Functional correctness of generated code: each program graded in the sandbox
(peftbench.sandbox), pass@k over the verdicts, and how many of each verdict there were."""

from __future__ import annotations

from math import comb
from typing import Sequence, Union

from peftbench.extras import require
from peftbench.metrics.base import METRICS, Score, check_lengths
from peftbench.sandbox import STATUSES, check_programs


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of Chen et al. (2021): 1 - C(n-c, k) / C(n, k) for n samples, c correct."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def _samples(prediction: Union[str, Sequence[str]]) -> list[str]:
    return [prediction] if isinstance(prediction, str) else list(prediction)


def pass_at_k_metric(k: int):
    """pass@k over n samples per problem (a prediction may be a list of n samples). The
    score carries the count of each verdict (passed, failed, error, timeout, rejected: a
    returned object that is not plain data) and each problem's verdicts."""

    def metric(predictions: Sequence, references: Sequence) -> Score:
        check_lengths(predictions, references)
        samples = [_samples(p) for p in predictions]
        too_few = [i for i, s in enumerate(samples) if len(s) < k]
        if too_few:
            raise ValueError(f"pass@{k} needs at least {k} samples per problem; problem {too_few[0]} has "
                             f"{len(samples[too_few[0]])} (set eval.num_samples >= {k} with sampling)")
        flat = [(program, ref) for group, ref in zip(samples, references) for program in group]
        results = iter(check_programs([p for p, _ in flat], [r for _, r in flat]))
        verdicts = [[next(results) for _ in group] for group in samples]
        scores = [pass_at_k(len(group), sum(v.passed for v in group), k) for group in verdicts]
        counts = {status: sum(v.status == status for group in verdicts for v in group) for status in STATUSES}
        per_example = [{"statuses": [v.status for v in group],
                        "reason": next((v.reason for v in group if not v.passed), "")} for group in verdicts]
        return Score(sum(scores) / len(scores) if scores else 0.0,
                     {"counts": counts, "per_example": per_example, "per_item": scores})

    return metric


for _k in (1, 5, 10):
    METRICS.register(f"pass@{_k}", pass_at_k_metric(_k))


@METRICS.decorator("codebleu")
def codebleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """CodeBLEU (Ren et al. 2020) for Python, as the `codebleu` package computes it: the
    metric PEFT-Bench reports for CoNaLa, CodeAlpaca-py and APPS."""
    calc_codebleu = require("codebleu", "the codebleu metric").calc_codebleu
    check_lengths(predictions, references)
    return float(calc_codebleu(list(references), list(predictions), lang="python")["codebleu"])
