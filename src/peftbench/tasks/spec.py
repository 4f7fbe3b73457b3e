"""Tasks as data: a YAML file names the source, the prompt template, the target, the
answer extractor and the metrics; this module turns it into a registered `Task`.

Templates are Jinja (sandboxed, strict: a field missing from a row is an error naming
it). `prompt` and `target` render to text; `choices` and `reference` are expressions
that evaluate to Python values (a list of candidates, a list of acceptable answers, a
dict of code tests). Adding a task never touches Python, unless it needs a new
extractor or metric.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Literal, Mapping, Optional

import yaml
from jinja2 import StrictUndefined
from jinja2.exceptions import TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, model_validator

from peftbench.yamlio import parse_yaml_documents
from peftbench.tasks.base import EXTRACTORS, FEW_SHOT_SEED, FEW_SHOT_SEPARATOR, TASKS, Example, Task, few_shot_text
from peftbench.tasks.sources import DataSourceError, Row, read_file, read_hub, read_package_file

def pick(options, index):
    """`options[index]` for a label index read from a row, which must be in range: GLUE's
    unlabelled test rows carry -1, which plain indexing would read as the last label."""
    if isinstance(index, str) and index.strip().lstrip("-").isdigit():
        index = int(index)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(options):
        raise ValueError(f"label {index!r} is out of range for {len(options)} labels ({', '.join(map(str, options))})"
                         + ("; -1 marks an unlabelled row (GLUE's test splits): score a labelled split"
                            if index == -1 else ""))
    return options[index]


def within(value, low, high):
    """A numeric label read from a row, which must lie in [low, high] (STS-B's test rows carry -1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"label {value!r} is out of range [{low}, {high}]"
                         + ("; -1 marks an unlabelled row (GLUE's test splits): score a labelled split"
                            if value == -1 else ""))
    return value


_JINJA = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
_JINJA.globals.update(letters="ABCDEFGHIJKLMNOPQRSTUVWXYZ", pick=pick, within=within)
_JINJA.filters.update(fromjson=json.loads, regex_replace=lambda text, pattern, new="": re.sub(pattern, new, text))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSpec(_Strict):
    """Where rows come from: a hub dataset (split names) or a file inside an installed package."""

    hub: Optional[str] = None
    config: Optional[str] = None
    revision: Optional[str] = None
    package: Optional[str] = Field(None, description="installed package holding the data file(s)")
    splits: dict[str, str] = Field(default_factory=lambda: {"train": "train", "test": "test"},
                                   description="our split -> hub split (or file path inside `package`)")
    field: Optional[str] = Field(None, description="top-level JSON field holding the rows (BBH: examples)")

    @model_validator(mode="after")
    def _one_kind(self) -> "SourceSpec":
        if bool(self.hub) == bool(self.package):
            raise ValueError("give exactly one of source.hub or source.package")
        return self


class FewShotSpec(_Strict):
    k: int = Field(0, ge=0)
    split: str = "train"
    seed: int = FEW_SHOT_SEED
    separator: str = FEW_SHOT_SEPARATOR


class TaskSpec(_Strict):
    name: str
    version: int = Field(1, ge=1, description="bump when a change alters scores (template, extractor, metrics): "
                         "the version and a digest of the spec are part of every run's identity")
    description: str
    source: SourceSpec
    prompt: str
    target: str
    choices: Optional[str] = None
    reference: Optional[str] = None
    scoring: Literal["generate", "loglik"] = "generate"
    extractor: str = "first_line"
    metrics: list[str] = Field(min_length=1)
    primary: Optional[str] = Field(None, description="the metric a leaderboard ranks by (the protocol's own: "
                                   "PEFT-Bench's F1 or macro-F1 for classification); default: the first metric")
    labels: Optional[list[str]] = Field(None, description="the answers a classification task accepts; an answer "
                                        "outside them is invalid (counted; scored as wrong with "
                                        "eval.invalid_answers: wrong, as PEFT-Bench does)")
    eval_split: str = "test"
    train_from: Optional[str] = Field(None, description="another task whose train split this task trains on")
    few_shot: FewShotSpec = Field(default_factory=FewShotSpec)
    max_train: Optional[int] = Field(None, gt=0)
    max_eval: Optional[int] = Field(None, gt=0)
    long_prompts: Literal["truncate", "refuse"] = Field(
        "truncate", description="a scored prompt longer than the model's context: cut from the left (as "
        "lm-evaluation-harness does; counted in the results), or refuse to score the task")
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> "TaskSpec":
        from peftbench.metrics import is_known_metric

        problems = [f"unknown metric {m!r}" for m in self.metrics if not is_known_metric(m)]
        if self.primary and self.primary not in self.metrics:
            problems.append(f"primary {self.primary!r} is not among metrics {self.metrics}")
        if self.extractor not in EXTRACTORS:
            problems.append(f"unknown extractor {self.extractor!r}; known: {', '.join(EXTRACTORS.names())}")
        if self.scoring == "loglik" and not self.choices:
            problems.append("scoring 'loglik' needs `choices`")
        if self.eval_split not in self.source.splits:
            problems.append(f"eval_split {self.eval_split!r} is not among source.splits {sorted(self.source.splits)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.source.splits) | ({"train"} if self.train_from else set())))

    @property
    def source_label(self) -> str:
        s = self.source
        where = f"hub:{s.hub}" + (f" ({s.config})" if s.config else "") if s.hub else f"package:{s.package}"
        return where + (f"; trains on {self.train_from}" if self.train_from else "")

    @cached_property
    def _templates(self):
        return (_JINJA.from_string(self.prompt), _JINJA.from_string(self.target),
                _JINJA.compile_expression(self.choices) if self.choices else None,
                _JINJA.compile_expression(self.reference) if self.reference else None)

    def example(self, row: Row, shots: str = "", where: str = "a row") -> Example:
        prompt, target, choices, reference = self._templates
        try:
            return Example(
                prompt=shots + prompt.render(**row), answer=target.render(**row),
                choices=tuple(choices(**row)) if choices else None,
                reference=reference(**row) if reference else None,
            )
        except (TemplateError, KeyError, IndexError, TypeError, ValueError) as error:
            if isinstance(error, ValueError) and str(error).startswith("label "):
                raise DataSourceError(f"{where}: task {self.name!r}: {error}") from None
            raise DataSourceError(
                f"{where}: task {self.name!r}: the row does not fit the task's templates ({type(error).__name__}: "
                f"{error}); row fields: {', '.join(sorted(row))}. Is the data in the real dataset's schema?"
            ) from None

    def rows(self, split: str, files: Optional[Mapping[str, str]] = None) -> list[Row]:
        if files and split in files:
            return read_file(Path(files[split]), self.source.field)
        if split not in self.source.splits:
            raise DataSourceError(f"task {self.name!r} has no {split!r} split; it has {', '.join(self.splits)}")
        where = self.source.splits[split]
        if self.source.package:
            return read_package_file(f"{self.source.package}/{where}", self.source.field)
        return read_hub(self.source.hub, self.source.config, where, self.source.revision)

    def _shots(self, files: Optional[Mapping[str, str]]) -> str:
        if not self.few_shot.k:
            return ""
        shots = self.few_shot
        return few_shot_text(self.rows(shots.split, files), shots.k, shots.seed, shots.separator, self.example)

    def load_split(self, split: str, files: Optional[Mapping[str, str]] = None) -> list[Example]:
        if split == "train" and self.train_from:  # the other task's rows, read with its own schema and templates
            source = TASKS.get(self.train_from)
            return source.with_files({"train": files["train"]}).examples("train") if files and "train" in files \
                else source.examples("train")
        shots = self._shots(files) if split != "train" else ""
        rows = self.rows(split, files)
        where = rows.where if hasattr(rows, "where") else (lambda i: f"row {i + 1}")
        return [self.example(row, shots, where(i)) for i, row in enumerate(rows)]

    def _with_shots(self, k: int) -> "TaskSpec":
        return self.model_copy(update={"few_shot": self.few_shot.model_copy(update={"k": k})})

    @cached_property
    def digest(self) -> str:
        """The resolved spec's fingerprint: a changed template, extractor or metric is a new task."""
        import hashlib

        spec = self.model_dump(mode="json", exclude={"description", "tags"})
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]

    def to_task(self, files: Optional[Mapping[str, str]] = None) -> Task:
        return Task(
            version=self.version, spec_digest=self.digest,
            name=self.name, description=self.description,
            load_split=lambda split: self.load_split(split, files),
            metrics=tuple(self.metrics), primary=self.primary, labels=tuple(self.labels) if self.labels else None,
            scoring=self.scoring, extractor=self.extractor,
            source=self.source_label if not files else f"local files: {', '.join(f'{k}={v}' for k, v in files.items())}",
            splits=tuple(sorted(set(self.splits) | set(files or {}))), eval_split=self.eval_split, tags=tuple(self.tags),
            max_train=self.max_train, max_eval=self.max_eval, long_prompts=self.long_prompts,
            scorings=("generate", "loglik") if self.choices else ("generate",),
            using_files=lambda new_files: self.to_task({**(files or {}), **new_files}),
            few_shot=self.few_shot.k, shots_from=self.few_shot.split,
            using_few_shot=lambda k: self._with_shots(k).to_task(files),
        )


def _expand(document: dict) -> tuple[list[dict], dict[str, tuple[str, ...]]]:
    """A document is one task, or a `subtasks:` family (BBH) rendered once per subtask with
    `<subtask>` substituted; a family's `group:` name then stands for all its members."""
    subtasks = document.pop("subtasks", None)
    group = document.pop("group", None)
    if not subtasks:
        return [document], {}
    text = yaml.safe_dump(document, sort_keys=False)
    members = [yaml.safe_load(text.replace("<subtask>", sub)) for sub in subtasks]
    return members, ({group: tuple(m["name"] for m in members)} if group else {})


def load_spec_file(path: Path) -> tuple[list[TaskSpec], dict[str, tuple[str, ...]]]:
    specs, groups = [], {}
    for document in parse_yaml_documents(Path(path).read_text(encoding="utf-8")):
        if not document:
            continue
        members, new_groups = _expand(dict(document))
        groups.update(new_groups)
        for member in members:
            try:
                specs.append(TaskSpec.model_validate(member))
            except ValueError as error:
                raise ValueError(f"{path}: task {member.get('name', '?')!r}: {error}") from None
    return specs, groups


# group name -> member task names (`tasks: [bbh]` in a suite means every BBH subtask)
TASK_GROUPS: dict[str, tuple[str, ...]] = {}


def register_spec_file(path: Path, overwrite: bool = False) -> list[Task]:
    specs, groups = load_spec_file(path)
    TASK_GROUPS.update(groups)
    return [TASKS.register(spec.name, spec.to_task(), overwrite=overwrite) for spec in specs]
