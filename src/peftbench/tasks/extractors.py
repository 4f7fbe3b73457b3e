"""Answer extractors: raw generation -> the string a metric grades."""

from __future__ import annotations

import re

from peftbench.tasks.base import EXTRACTION_COMPLETE, EXTRACTORS, _first_line_complete

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_LETTER = re.compile(r"(?:^|[\s(\[])([A-J])(?:$|[\s).\]:,])")
_FENCE = re.compile(r"```(?:python|py)?\n(.*?)(?:```|$)", re.DOTALL)


@EXTRACTORS.decorator("label")
def label(text: str) -> str:
    """A class label word: first line, lower-cased, trailing punctuation dropped ('Yes.' -> 'yes')."""
    line = text.strip().split("\n", 1)[0].strip()
    return line.lower().rstrip(".!?,;:").strip()


EXTRACTION_COMPLETE.register("label", _first_line_complete)


@EXTRACTORS.decorator("final_number")
def final_number(text: str) -> str:
    """GSM8K style: the number after '####' if present, else the last number in the text."""
    marked = "####" in text
    numbers = _NUMBER.findall(text.split("####", 1)[1] if marked else text)
    if not numbers:
        return text.strip()
    return (numbers[0] if marked else numbers[-1]).replace(",", "").rstrip(".")


@EXTRACTION_COMPLETE.decorator("final_number")
def _final_number_complete(text: str) -> bool:
    # The extractor takes the first number after the first '####': final once that number
    # is closed by a character that cannot extend it (a '.' extends it when a digit follows;
    # commas are part of the match). Without the marker, the last number can always change
    # (EOS only). A trailing U+FFFD is half a multi-byte character, still undecided.
    if "####" not in text:
        return False
    after = text.split("####", 1)[1]
    match = _NUMBER.search(after)
    if not match:
        return False
    rest = after[match.end():]
    if not rest or rest[0] == "\ufffd":
        return False
    if rest[0] == ".":
        return len(rest) > 1 and rest[1] != "\ufffd" and not rest[1].isdigit()
    return True


@EXTRACTORS.decorator("math")
def math_answer(text: str) -> str:
    """Kept whole: math-verify finds the \\boxed{} or final expression itself."""
    return text.strip()


@EXTRACTORS.decorator("choice_letter")
def choice_letter(text: str) -> str:
    """The first option letter A-J standing alone ('B', '(B)', 'B.', 'answer: B')."""
    match = _LETTER.search(text.strip())
    return match.group(1) if match else text.strip()[:1]


@EXTRACTION_COMPLETE.decorator("choice_letter")
def _choice_letter_complete(text: str) -> bool:
    # final once a letter is closed by a real character: one closed only by the end of
    # the text ("B") may yet become a word ("Be"); earlier positions have already failed
    match = _LETTER.search(text.strip())
    return bool(match) and match.end() > match.end(1)


@EXTRACTORS.decorator("code")
def code(text: str) -> str:
    """A fenced Python block if there is one, else the generation as is (a HumanEval
    completion starts indented, so leading whitespace is kept)."""
    fenced = _FENCE.search(text)
    return fenced.group(1).rstrip() if fenced else text.rstrip()


@EXTRACTION_COMPLETE.decorator("code")
def _code_complete(text: str) -> bool:
    # the first fenced block is closed: later text cannot move or change it
    fenced = _FENCE.search(text)
    return bool(fenced) and fenced.group(0).endswith("```")


@EXTRACTORS.decorator("bbh")
def until_harness_stop(text: str) -> str:
    """The generation up to lm-evaluation-harness's BBH stop strings, otherwise untouched."""
    from peftbench.metrics.bbh import HARNESS_STOP

    cut = min((i for i in (text.find(s) for s in HARNESS_STOP) if i >= 0), default=len(text))
    return text[:cut]


@EXTRACTION_COMPLETE.decorator("bbh")
def _bbh_complete(text: str) -> bool:
    from peftbench.metrics.bbh import HARNESS_STOP

    return any(stop in text for stop in HARNESS_STOP)
