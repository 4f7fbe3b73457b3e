"""Deterministic, disjoint splits from the generators.

Each (task, split) has its own seed (crc32 of its name, stable across Python runs and
machines); evaluation splits drop any prompt that also occurs in the training split, so
a score on test never measures memorised training items.
"""

from __future__ import annotations

import random
import zlib
from functools import lru_cache

from peftbench.micro import generators as g
from peftbench.tasks.base import Example

# name -> (generator for train/validation/test, generator for the transfer split or None)
GENERATORS: dict[str, tuple[g.Generator, g.Generator | None]] = {
    **{name: (fn, None) for name, fn in g.GENERAL_SKILLS.items()},
    "math": (g.math_task, None),
    "sentiment": (g.sentiment_short, g.sentiment_long),
    "code": (g.code_task, None),
    "nli": (g.nli_task, None),
    "med": (g.med_task, None),
}
SIZES = {"train": 2000, "validation": 100, "test": 200, "transfer": 200}
# facts and the arithmetic table are knowledge: their tests ask trained items, by design
_SHARED_SPACE = {"facts", "add"}


def _rng(name: str, split: str, offset: int = 0) -> random.Random:
    return random.Random(zlib.crc32(f"micro/{name}/{split}".encode()) + offset)


@lru_cache(maxsize=None)
def split_examples(name: str, split: str) -> tuple[Example, ...]:
    main, transfer = GENERATORS[name]
    generator = transfer if split == "transfer" else main
    if generator is None:
        raise ValueError(f"micro task {name!r} has no {split!r} split")
    rng = _rng(name, split)
    banned = set() if split == "train" or name in _SHARED_SPACE else {e.prompt for e in split_examples(name, "train")}
    out: list[Example] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < SIZES[split] and attempts < SIZES[split] * 50:
        attempts += 1
        example = generator(rng)
        if example.prompt in banned or (split != "train" and example.prompt in seen):
            continue
        seen.add(example.prompt)
        out.append(example)
    return tuple(out)


def pretraining_stream(seed: int, weights: dict[str, float] | None = None):
    """Endless mixture of general-skill examples, never the evaluation splits' prompts.

    `weights` (skill -> relative frequency, default uniform) spend the budget where the
    skills are hard: a copy task is learned from a few thousand examples, arithmetic
    facts and in-context lookup need many more.
    """
    weights = weights or {name: 1.0 for name in g.GENERAL_SKILLS}
    unknown = set(weights) - set(g.GENERAL_SKILLS)
    if unknown:
        raise ValueError(f"unknown micro skills {sorted(unknown)}; known: {', '.join(g.GENERAL_SKILLS)}")
    skills, frequencies = list(weights), list(weights.values())
    rng = random.Random(seed)
    banned = {e.prompt for name in skills if name not in _SHARED_SPACE for e in split_examples(name, "test")}
    while True:
        name = rng.choices(skills, frequencies)[0]
        example = GENERATORS[name][0](rng)
        if example.prompt not in banned:
            yield example
