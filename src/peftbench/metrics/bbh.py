"""BIG-Bench Hard scoring as lm-evaluation-harness does it (bbh zero-shot, v3).

`bbh_strict` is the harness's strict-match: the generation cut at its stop strings (our
`bbh` extractor), then exact match after removing a final '.', commas, newlines,
backslashes and double quotes, ignoring case; leading whitespace is *not* removed there.
`bbh_first_line` applies the same comparison to the first non-empty line, stripped: a
model trained to answer " (A)" then a newline is not failed for its formatting.
"""

from __future__ import annotations

import re
from typing import Sequence

from peftbench.metrics.base import METRICS, check_lengths, mean_of_items

HARNESS_STOP = ("</s>", "Q:", "<|im_end|>")
_IGNORED = (r"\.$", ",", "\n", r"\\", '"')


def harness_normalise(text: str) -> str:
    for pattern in _IGNORED:
        text = re.sub(pattern, "", text)
    return text.lower()


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.split("\n") if line.strip()), "")


@METRICS.decorator("bbh_strict")
def bbh_strict(predictions: Sequence[str], references: Sequence[str]) -> float:
    check_lengths(predictions, references)
    hits = [harness_normalise(p) == harness_normalise(r) for p, r in zip(predictions, references)]
    return mean_of_items(hits)


@METRICS.decorator("bbh_first_line")
def bbh_first_line(predictions: Sequence[str], references: Sequence[str]) -> float:
    check_lengths(predictions, references)
    hits = [harness_normalise(_first_line(p)) == harness_normalise(r.strip()) for p, r in zip(predictions, references)]
    return mean_of_items(hits)
