"""What a task is to peftbench: data, prompt, target, answer extraction and metrics.

A task knows nothing of methods. It hands out `Example`s per split; the evaluator either
generates and extracts an answer (`scoring="generate"`) or picks the candidate answer
with the highest log-likelihood (`scoring="loglik"`).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Literal, Mapping, Optional, Sequence

from peftbench.registry import Registry

Split = Literal["train", "validation", "test"]


@dataclass(frozen=True)
class Example:
    prompt: str
    answer: str  # the SFT target, and the reference the metrics compare against
    choices: Optional[tuple[str, ...]] = None  # candidates for log-likelihood scoring
    # what the metric grades against, when not `answer`: unit tests, a list of acceptable answers
    reference: Optional[Any] = None

    @property
    def grading_reference(self) -> Any:
        return self.answer if self.reference is None else self.reference


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


EXTRACTORS: Registry[Callable[[str], str]] = Registry("answer extractor")
EXTRACTORS.register("first_line", _first_line)
EXTRACTORS.register("strip", str.strip)

# extractor name -> "no further text can change what the extractor returns for this
# generation". Evaluation stops a sequence as soon as this holds, so short answers do
# not generate to max_new_tokens, and by construction the score is the one a full-length
# generation gets. An extractor without an entry (the last number, the whole text) is
# only complete at EOS.
EXTRACTION_COMPLETE: Registry[Callable[[str], bool]] = Registry("extraction-complete test")


def _first_line_complete(text: str) -> bool:
    return "\n" in text.strip()  # the first non-empty line has ended


EXTRACTION_COMPLETE.register("first_line", _first_line_complete)


@dataclass
class Task:
    name: str
    description: str
    load_split: Callable[[Split], Sequence[Example]]
    metrics: tuple[str, ...] = ("accuracy",)
    primary: Optional[str] = None  # the metric that ranks (default: the first)
    labels: Optional[tuple[str, ...]] = None  # the answers a classification task accepts
    scoring: Literal["generate", "loglik"] = "generate"
    extractor: str = "first_line"
    source: str = "built-in"
    splits: tuple[str, ...] = ("train", "test")
    eval_split: str = "test"
    tags: tuple[str, ...] = field(default_factory=tuple)
    max_train: Optional[int] = None  # default size caps; a run's task config overrides them
    max_eval: Optional[int] = None
    max_new_tokens: Optional[int] = None  # overrides eval.max_new_tokens when set (from the run's task config)
    # the same task reading local files in the real schema ({split: path}); None: not file-backed
    using_files: Optional[Callable[[Mapping[str, str]], "Task"]] = None
    few_shot: int = 0  # solved examples its scored prompts already carry
    shots_from: str = "train"  # the split those examples are drawn from
    # the same task with k shots instead of its own; None: `with_few_shot`'s generic way
    using_few_shot: Optional[Callable[[int], "Task"]] = None
    # a scored prompt longer than the model's context: cut from the left (lm-evaluation-
    # harness's rule; counted in the results) or refuse to score the task
    long_prompts: Literal["truncate", "refuse"] = "truncate"
    # the scorings its examples allow: log-likelihood needs candidate answers (`choices`)
    scorings: tuple[str, ...] = ("generate",)
    version: int = 1  # bumped when a change alters scores; part of every run's identity
    spec_digest: Optional[str] = None  # a YAML task's resolved spec (a Python task: its version alone)

    def __post_init__(self) -> None:
        if self.scoring not in self.scorings:
            self.scorings = (*self.scorings, self.scoring)

    @property
    def fingerprint(self) -> dict:
        """What of the task a result depends on beyond the run's config: its version and spec."""
        return {"version": self.version, "digest": self.spec_digest}

    def scored_by(self, scoring: str) -> "Task":
        """The task scored by `scoring` instead of its own (a suite's `task.scoring`)."""
        if scoring not in self.scorings:
            raise ValueError(f"task {self.name!r} cannot be scored by {scoring!r}; it allows {', '.join(self.scorings)}")
        return self if scoring == self.scoring else replace(self, scoring=scoring)

    @property
    def primary_metric(self) -> str:
        return self.primary or self.metrics[0]

    def ranked_by(self, metric: str) -> "Task":
        """The task with `metric` (one of its metrics) as its primary (a suite's `task.primary`)."""
        if metric not in self.metrics:
            raise ValueError(f"task {self.name!r} has no metric {metric!r}; it has {', '.join(self.metrics)}")
        return replace(self, primary=metric)

    @property
    def executes_code(self) -> bool:
        from peftbench.metrics import executes_code

        return any(executes_code(m) for m in self.metrics)

    def extract(self, text: str) -> str:
        return EXTRACTORS.get(self.extractor)(text)

    @property
    def extraction_complete(self) -> Optional[Callable[[str], bool]]:
        """The test that a generation's answer is final (see EXTRACTION_COMPLETE), if the extractor has one."""
        return EXTRACTION_COMPLETE.get(self.extractor) if self.extractor in EXTRACTION_COMPLETE else None

    def with_files(self, files: Mapping[str, str]) -> "Task":
        if self.using_files is None:
            raise ValueError(f"task {self.name!r} is generated ({self.source}); it reads no data files")
        return self.using_files(files)

    def with_few_shot(self, k: int) -> "Task":
        """The task with `k` solved examples (prompt and answer, a draw fixed by
        FEW_SHOT_SEED) in front of every prompt of its scored splits; training prompts
        stay bare. Every scored prompt starts with the same text, which evaluation runs
        once per batch (`evaluate.prefill`)."""
        if k == self.few_shot:
            return self
        if self.using_few_shot is not None:
            return self.using_few_shot(k)
        if self.few_shot:
            raise ValueError(f"task {self.name!r} writes its own {self.few_shot}-shot prompts; it cannot take k={k}")
        load = self.load_split

        def load_with_shots(split: Split) -> Sequence[Example]:
            rows = load(split)
            if split == "train" or not k:
                return rows
            shots = few_shot_text(load(self.shots_from), k)
            return [replace(e, prompt=shots + e.prompt) for e in rows]

        return replace(self, load_split=load_with_shots, few_shot=k)

    def examples(self, split: Split, limit: Optional[int] = None, seed: int = 0) -> list[Example]:
        """The split's examples; with `limit`, a fixed seeded sample kept in original order."""
        if split not in self.splits:
            raise ValueError(f"task {self.name!r} has no split {split!r}; it has {', '.join(self.splits)}")
        data = list(self.load_split(split))
        if limit is not None and len(data) > limit:
            keep = sorted(random.Random(seed).sample(range(len(data)), limit))
            data = [data[i] for i in keep]
        return data


def data_hash(examples: Sequence[Example]) -> str:
    """sha256 of the examples' content: equal hashes mean the model saw the same data."""
    payload = json.dumps([asdict(e) for e in examples], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


FEW_SHOT_SEED = 1234
FEW_SHOT_SEPARATOR = "\n\n"


def few_shot_text(pool: Sequence[Any], k: int, seed: int = FEW_SHOT_SEED, separator: str = FEW_SHOT_SEPARATOR,
                  to_example: Callable[[Any], Example] = lambda example: example) -> str:
    """k solved examples drawn from `pool` (a seeded draw), each as prompt, answer and
    separator; `to_example` makes an Example of a drawn item (only the k drawn are made)."""
    pool = list(pool)
    drawn = random.Random(seed).sample(pool, min(k, len(pool)))
    return "".join(e.prompt + e.answer + separator for e in map(to_example, drawn))

TASKS: Registry[Task] = Registry("task")


def register_task(task: Task) -> Task:
    return TASKS.register(task.name, task)
