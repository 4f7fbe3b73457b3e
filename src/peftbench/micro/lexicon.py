"""The micro world's fixed vocabulary: pseudo-words, names, a fact base, a symptom base.

Everything derives from fixed seeds, so every install generates the same world.
"""

from __future__ import annotations

import random
from functools import lru_cache

CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"


def pseudo_word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(syllables))


@lru_cache(maxsize=None)
def unique_words(seed: int, count: int, syllables: int = 2) -> tuple[str, ...]:
    rng = random.Random(seed)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < count:
        word = pseudo_word(rng, syllables)
        if word not in seen:
            seen.add(word)
            words.append(word)
    return tuple(words)


NAMES = ("Tom", "Ana", "Ben", "Eva", "Sam", "Lia", "Max", "Ida", "Leo", "Mia", "Ned", "Zoe")
OBJECTS = ("apples", "coins", "books", "pens", "cards", "shells", "stamps", "marbles")
COLORS = ("red", "blue", "green", "black", "white", "pink")
THINGS = ("ball", "car", "hat", "cup", "box", "kite", "lamp", "bag")


@lru_cache(maxsize=None)
def fact_base() -> tuple[tuple[str, str, str], ...]:
    """(relation, subject, object) facts: the micro world's Natural Questions."""
    places = unique_words(101, 60, 3)
    capitals = unique_words(102, 60, 2)
    people = unique_words(103, 40, 2)
    foods = unique_words(104, 40, 2)
    facts = [("capital", p.capitalize(), c.capitalize()) for p, c in zip(places, capitals)]
    facts += [("food", p.capitalize(), f) for p, f in zip(people, foods)]
    return tuple(facts)


# Sentiment lexicon (micro SST-2 / IMDB)
POSITIVE = ("good", "great", "fun", "lovely", "superb", "moving", "bright", "clever", "warm", "charming")
NEGATIVE = ("bad", "awful", "dull", "boring", "weak", "sloppy", "bland", "tedious", "cold", "clumsy")
TOPICS = ("film", "plot", "cast", "music", "ending", "script", "pacing", "story")


@lru_cache(maxsize=None)
def symptom_base() -> dict[str, tuple[str, ...]]:
    """Diagnosis -> its four symptoms (micro MedMCQA). Symptoms overlap across diagnoses."""
    rng = random.Random(105)
    diagnoses = [w.capitalize() + "itis" for w in unique_words(106, 16, 2)]
    symptoms = unique_words(107, 24, 2)
    return {d: tuple(rng.sample(symptoms, 4)) for d in diagnoses}
