"""The micro world's tasks in the task registry: general skills and held-out targets."""

from __future__ import annotations

from functools import partial

from peftbench.tasks.base import Task, register_task
from peftbench.tasks.spec import TASK_GROUPS

# Named here rather than imported from peftbench.micro.generators: the generators build
# `Example`s from this package, so importing them at registration time would be circular.
# A test checks the two lists agree.
GENERAL_SKILLS = ("copy", "reverse", "sort", "count", "add", "chain", "format", "facts")


def split_examples(generator: str, split: str):
    from peftbench.micro.splits import split_examples as generate

    return generate(generator, split)

SOURCE = "built-in micro world generator"
GENERAL_TASKS = tuple(f"micro-{name}" for name in GENERAL_SKILLS)

for _skill in GENERAL_SKILLS:
    register_task(Task(
        name=f"micro-{_skill}", description=f"micro general skill: {_skill} (pretraining mixture, retention suite)",
        load_split=partial(split_examples, _skill), metrics=("accuracy",), scoring="generate",
        source=SOURCE, splits=("train", "validation", "test"), tags=("micro", "general"),
    ))

_TARGETS = [
    ("micro-math", "math", "arithmetic word problems, 1-2 steps, worked solutions (micro GSM8K); exact match of "
     "the final number", ("accuracy",), "generate", "test"),
    ("micro-sentiment", "sentiment", "one-sentence review polarity (micro SST-2)", ("accuracy",), "loglik", "test"),
    ("micro-sentiment-transfer", "sentiment", "train on one-sentence reviews, test on long reviews (micro SST-2 -> IMDB)",
     ("accuracy",), "loglik", "transfer"),
    ("micro-code", "code", "one-line Python function from a spec, graded by unit tests (micro HumanEval)",
     ("pass@1",), "generate", "test"),
    ("micro-nli", "nli", "yes/no question over a short passage (micro BoolQ)", ("accuracy",), "loglik", "test"),
    ("micro-med", "med", "diagnosis from symptoms, 4 options (micro MedMCQA)", ("accuracy",), "loglik", "test"),
]
TARGET_TASKS = tuple(t[0] for t in _TARGETS)

EXTRACTOR = {"micro-math": "final_number"}  # the others' answers are one line

for _name, _generator, _description, _metrics, _scoring, _eval_split in _TARGETS:
    register_task(Task(
        name=_name, description=_description, load_split=partial(split_examples, _generator), metrics=_metrics,
        scoring=_scoring, scorings=("generate", "loglik") if _scoring == "loglik" else ("generate",), source=SOURCE, eval_split=_eval_split, extractor=EXTRACTOR.get(_name, "first_line"),
        splits=("train", "validation", "test") + (("transfer",) if _eval_split == "transfer" else ()),
        tags=("micro", "target"),
    ))

TASK_GROUPS["micro-general"] = GENERAL_TASKS  # the micro world's retention suite
