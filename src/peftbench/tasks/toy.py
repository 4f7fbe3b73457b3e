"""A built-in toy task so the pipeline runs end to end with no download.

toy-sentiment: a review made of neutral filler words and one sentiment word; the label
is that word's polarity. It only stands in until the micro world's real target tasks
land; its generator is seeded, so every run sees the same data.
"""

from __future__ import annotations

import random
from functools import lru_cache

from peftbench.tasks.base import Example, Task, register_task

POSITIVE = ("good", "great", "fun", "lovely", "superb", "moving", "bright", "clever")
NEGATIVE = ("bad", "awful", "dull", "boring", "weak", "sloppy", "bland", "tedious")
FILLER = ("the", "film", "plot", "cast", "was", "and", "a", "story", "felt", "with", "its", "ending", "overall")
LABELS = ("positive", "negative")
_SIZES = {"train": (512, 11), "test": (128, 23)}  # split -> (examples, generator seed)


def _review(rng: random.Random) -> tuple[str, str]:
    label = rng.choice(LABELS)
    words = [rng.choice(FILLER) for _ in range(rng.randint(3, 6))]
    words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if label == "positive" else NEGATIVE))
    return " ".join(words), label


@lru_cache(maxsize=None)
def _generate(split: str, with_choices: bool) -> tuple[Example, ...]:
    size, seed = _SIZES[split]
    rng = random.Random(seed)
    examples = []
    for _ in range(size):
        text, label = _review(rng)
        examples.append(
            Example(
                prompt=f"Review: {text}\nSentiment:",
                answer=f" {label}",
                choices=tuple(f" {c}" for c in LABELS) if with_choices else None,
            )
        )
    return tuple(examples)


register_task(
    Task(
        name="toy-sentiment",
        description="toy review polarity, answer generated and graded by accuracy",
        load_split=lambda split: _generate(split, False),
        metrics=("accuracy",),
        scoring="generate",
        source="built-in generator (512 train / 128 test)",
        tags=("toy", "classification"),
    )
)
register_task(
    Task(
        name="toy-sentiment-choice",
        description="toy review polarity, scored by log-likelihood of each label",
        load_split=lambda split: _generate(split, True),
        metrics=("accuracy",),
        scoring="loglik",
        source="built-in generator (512 train / 128 test)",
        tags=("toy", "classification"),
    )
)
