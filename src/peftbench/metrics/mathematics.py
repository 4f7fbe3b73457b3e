"""Math exact match with symbolic checking (math-verify): `\\frac{1}{2}` equals `0.5`,
`\\boxed{}` answers are found, `#### 72` (GSM8K) parses, and wrong values are rejected."""

from __future__ import annotations

from typing import Sequence

from peftbench.extras import require
from peftbench.metrics.base import METRICS, check_lengths, mean_of_items


def _as_math(text: str) -> str:
    # GSM8K references put the final answer after '####'; math-verify reads the rest
    text = text.split("####")[-1].strip() if "####" in text else text
    return text.replace(",", "") if text.replace(",", "").replace(".", "").lstrip("-").isdigit() else text


def math_equal(prediction: str, reference: str) -> bool:
    math_verify = require("math_verify", "math answer checking (math_em)")
    parse, verify = math_verify.parse, math_verify.verify

    gold = parse(_as_math(reference))
    if not gold:  # math-verify's plain parse misses bare LaTeX; try it as inline math
        gold = parse(f"${_as_math(reference)}$")
    answer = parse(_as_math(prediction))
    return bool(gold and answer and verify(gold, answer))


@METRICS.decorator("math_em")
def math_exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    check_lengths(predictions, references)
    return mean_of_items([math_equal(p, r) for p, r in zip(predictions, references)])
