"""IFEval (Zhou et al. 2023) scores through lm-evaluation-harness's own implementation.

The instruction checkers (25 kinds, strict and loose variants) are the harness's code,
called on our generations, so the scores agree with the harness by construction rather
than by a re-implementation that could drift. Needs the `ifeval` extra.
"""

from __future__ import annotations

from typing import Sequence

from peftbench.errors import PeftbenchError
from peftbench.metrics.base import METRICS, check_lengths


def _judge(predictions: Sequence[str], references: Sequence[dict]) -> list[dict]:
    check_lengths(predictions, references)
    try:
        from lm_eval.tasks.ifeval.utils import process_results
    except ImportError:
        raise PeftbenchError("IFEval scoring uses lm-evaluation-harness: pip install \"peftbench[ifeval]\"") from None
    try:
        return [process_results(doc, [prediction]) for prediction, doc in zip(predictions, references)]
    except LookupError as error:  # the sentence-count checker needs NLTK's punkt data
        raise PeftbenchError(
            "an IFEval instruction needs NLTK data that is not installed: "
            "python -m nltk.downloader punkt punkt_tab  (or copy nltk_data from a machine with internet)\n" + str(error)[:200]
        ) from None


def _prompt_level(key: str):
    def metric(predictions: Sequence[str], references: Sequence[dict]) -> float:
        results = _judge(predictions, references)
        return sum(bool(r[key]) for r in results) / len(results) if results else 0.0

    return metric


def _instruction_level(key: str):
    def metric(predictions: Sequence[str], references: Sequence[dict]) -> float:
        flags = [flag for r in _judge(predictions, references) for flag in r[key]]
        return sum(flags) / len(flags) if flags else 0.0

    return metric


METRICS.register("ifeval_inst_strict", _instruction_level("inst_level_strict_acc"))
METRICS.register("ifeval_prompt_strict", _prompt_level("prompt_level_strict_acc"))
METRICS.register("ifeval_inst_loose", _instruction_level("inst_level_loose_acc"))
METRICS.register("ifeval_prompt_loose", _prompt_level("prompt_level_loose_acc"))
