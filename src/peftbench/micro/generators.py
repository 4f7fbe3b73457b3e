"""Seeded generators of the micro world's examples: general skills and target tasks.

General skills are the pretraining mixture and, later, the retention suite. Target
tasks are held out of pretraining; each mirrors a family of the seed benchmarks.
Every generator is a pure function of a `random.Random`, so a (name, split) pair always
yields the same examples.
"""

from __future__ import annotations

import random
import string
from typing import Callable

from peftbench.micro import lexicon as lx
from peftbench.tasks.base import Example

Generator = Callable[[random.Random], Example]


def _qa(prompt: str, answer: str, choices=None, reference=None) -> Example:
    return Example(prompt=f"{prompt}\nAnswer:", answer=f" {answer}", choices=choices, reference=reference)


def _letters(rng: random.Random, low: int, high: int) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(low, high)))


# ---------------------------------------------------------------- general skills


def copy_skill(rng):
    word = _letters(rng, 3, 8)
    return _qa(f"Copy: {word}", word)


def reverse_skill(rng):
    # spaced letters: one token each, so reversing is about order, not about spelling BPE merges
    letters = list(_letters(rng, 3, 7))
    return _qa(f"Reverse: {' '.join(letters)}", " ".join(reversed(letters)))


def sort_skill(rng):
    digits = [str(rng.randint(0, 9)) for _ in range(rng.randint(3, 6))]
    return _qa(f"Sort: {' '.join(digits)}", " ".join(sorted(digits)))


def count_skill(rng):
    target = rng.choice("abc")
    letters = [rng.choice("abc") for _ in range(rng.randint(3, 7))]
    return _qa(f"Count {target} in: {' '.join(letters)}", str(letters.count(target)))


ADD_RANGE = (29, 9)  # a <= 29, b <= 9: the facts micro-math's word problems are built from


def add_skill(rng):
    """Add or subtract a digit: a table of 555 arithmetic facts (knowledge, like `facts`)."""
    a, b = rng.randint(0, ADD_RANGE[0]), rng.randint(0, ADD_RANGE[1])
    if rng.random() < 0.5 and a >= b:
        return _qa(f"Compute: {a} - {b}", str(a - b))
    return _qa(f"Compute: {a} + {b}", str(a + b))


CHAIN_STEPS = {
    "reverse": lambda xs: xs[::-1],
    "upper": lambda xs: [x.upper() for x in xs],
    "rotate": lambda xs: xs[1:] + xs[:1],  # first letter moves to the end
}


def chain_skill(rng):
    """Two symbol manipulations in sequence (micro BBH): the second acts on the first's output."""
    letters = list(_letters(rng, 3, 6))
    steps = [rng.choice(sorted(CHAIN_STEPS)) for _ in range(2)]
    out = letters
    for step in steps:
        out = CHAIN_STEPS[step](out)
    return _qa(f"Apply {steps[0]} then {steps[1]}: {' '.join(letters)}", " ".join(out))


def format_skill(rng):
    words = " ".join(rng.sample(lx.unique_words(202, 40), rng.randint(1, 3)))
    style = rng.choice(["upper", "brackets", "quotes"])
    out = {"upper": words.upper(), "brackets": f"[{words}]", "quotes": f'"{words}"'}[style]
    return _qa(f"Format {style}: {words}", out)


def facts_skill(rng):
    relation, subject, obj = rng.choice(lx.fact_base())
    question = {"capital": f"Capital of {subject}?", "food": f"Favourite food of {subject}?"}[relation]
    return _qa(question, obj)


GENERAL_SKILLS: dict[str, Generator] = {
    "copy": copy_skill,
    "reverse": reverse_skill,
    "sort": sort_skill,
    "count": count_skill,
    "add": add_skill,
    "chain": chain_skill,
    "format": format_skill,
    "facts": facts_skill,
}


# ---------------------------------------------------------------- target tasks


def math_task(rng):
    """Multi-step arithmetic word problems (micro GSM8K): one or two operations, each a
    fact of the `add` skill's table, so the task tests composing known arithmetic. As in
    GSM8K the answer is a worked solution ("17 + 8 = 25, 25 + 1 = 26.") and grading reads
    its final number."""
    name, thing = rng.choice(lx.NAMES), rng.choice(lx.OBJECTS)
    top, step = ADD_RANGE
    total = rng.randint(5, 25)
    text, steps = f"{name} has {total} {thing}.", []
    for _ in range(rng.randint(1, 2)):
        if total + 1 <= top and (total < 2 or rng.random() < 0.5):
            n = rng.randint(1, min(step, top - total))
            text += f" {name} gets {n} more."
            steps.append(f"{total} + {n} = {total + n}")
            total += n
        else:
            n = rng.randint(1, min(step, total - 1))
            text += f" {name} gives away {n}."
            steps.append(f"{total} - {n} = {total - n}")
            total -= n
    return _qa(f"{text} How many {thing} does {name} have now?", ", ".join(steps) + ".", reference=str(total))


OPENERS = ("", "honestly, ", "overall, ", "i think ", "in short, ")
ADVERBS = ("", "very ", "quite ", "really ", "so ")
ENDINGS = (".", "!", " to me.", " at times.")


def _sentence(rng, polarity: str | None) -> str:
    topic = rng.choice(lx.TOPICS)
    if polarity is None:
        return f"the {topic} was {rng.choice(['long', 'new', 'short', 'loud', 'quiet', 'simple'])}."
    word = rng.choice(lx.POSITIVE if polarity == "positive" else lx.NEGATIVE)
    return f"{rng.choice(OPENERS)}the {topic} was {rng.choice(ADVERBS)}{word}{rng.choice(ENDINGS)}"


SENTIMENT_CHOICES = (" positive", " negative")


def sentiment_short(rng):
    """One sentence with one sentiment word (micro SST-2)."""
    label = rng.choice(["positive", "negative"])
    return _qa(f"Review: {_sentence(rng, label)}", label, SENTIMENT_CHOICES)


def sentiment_long(rng):
    """Several sentences, neutral ones and a majority polarity (micro IMDB)."""
    label = rng.choice(["positive", "negative"])
    other = "negative" if label == "positive" else "positive"
    n_major = rng.randint(2, 3)
    polarities = [label] * n_major + [other] * rng.randint(0, n_major - 1) + [None] * rng.randint(1, 3)
    rng.shuffle(polarities)
    return _qa("Review: " + " ".join(_sentence(rng, p) for p in polarities), label, SENTIMENT_CHOICES)


def code_task(rng):
    """Write a one-line Python function from its spec (micro HumanEval); graded by tests."""
    a, b = rng.randint(2, 12), rng.randint(1, 30)
    op_word, op = rng.choice([("plus", "+"), ("minus", "-")])
    spec, body = rng.choice([
        (f"x times {a} {op_word} {b}", f"x*{a}{op}{b}"),
        (f"x {op_word} {b} times {a}", f"(x{op}{b})*{a}"),
        (f"x {op_word} {b}", f"x{op}{b}"),
        (f"x times x {op_word} {b}", f"x*x{op}{b}"),
    ])
    # the body is built here from integers, so evaluating it to derive the tests is safe
    expected = eval(f"lambda x: {body}")  # noqa: S307
    tests = "\n".join(f"assert f({x}) == {expected(x)}" for x in (-3, 0, 1, 4, 7))
    return _qa(f"Write f(x) that returns {spec}.", f"def f(x): return {body}", reference=tests)


def nli_task(rng):
    """Yes/no question over a short passage (micro BoolQ)."""
    name = rng.choice(lx.NAMES)
    owned = rng.sample([(c, t) for c in lx.COLORS for t in lx.THINGS], 2)
    passage = f"{name} has a {owned[0][0]} {owned[0][1]} and a {owned[1][0]} {owned[1][1]}."
    if rng.random() < 0.5:
        asked, label = rng.choice(owned), "yes"
    else:
        color, thing = rng.choice(owned)
        asked = (rng.choice([c for c in lx.COLORS if (c, thing) not in owned]), thing)
        label = "no"
    return _qa(f"Passage: {passage} Question: does {name} have a {asked[0]} {asked[1]}?", label, (" yes", " no"))


MED_LETTERS = ("A", "B", "C", "D")


def med_task(rng):
    """Multiple choice: which diagnosis explains two symptoms (micro MedMCQA)."""
    base = lx.symptom_base()
    diagnosis = rng.choice(sorted(base))
    symptoms = rng.sample(base[diagnosis], 2)
    wrong = rng.sample([d for d in sorted(base) if d != diagnosis and not set(symptoms) <= set(base[d])], 3)
    options = wrong + [diagnosis]
    rng.shuffle(options)
    listed = " ".join(f"{letter}) {option}" for letter, option in zip(MED_LETTERS, options))
    answer = MED_LETTERS[options.index(diagnosis)]
    return _qa(f"Symptoms: {', '.join(symptoms)}. Which diagnosis? {listed}", answer, tuple(f" {x}" for x in MED_LETTERS))
