"""Typed configuration: YAML in, validated pydantic models out, clear errors for bad input.

Validation happens in two passes so every fault is reported at once, before any model
loads: pydantic checks the shape and types of the whole document, then each method's
own hyper-parameter model checks `method.*` and the task registry checks `task.name`.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from peftbench.errors import ConfigError, UnknownNameError

DEFAULT_MODEL = "tiny-random-llama"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    """Which base model: a built-in name, a hub id or a local folder."""

    name: str = Field(DEFAULT_MODEL, min_length=1)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "float32"
    device: str = "auto"
    revision: Optional[str] = None
    trust_remote_code: bool = False

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError(f"got {value!r}; allowed: auto, cpu, mps, cuda, cuda:N")
        return value


class MethodConfig(BaseModel):
    """A PEFT method by name; every other key is one of that method's hyper-parameters."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1)
    # Methods differ in the learning rate they need (full fine-tuning ~1e-4, LoRA ~1e-3,
    # soft prompts ~1e-2, as in PEFT-Bench's protocol): a method entry may set its own.
    lr: Optional[float] = Field(None, gt=0, description="this method's learning rate (overrides train.lr)")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TaskConfig(_Strict):
    """A task by name, with caps on how many examples to use and the seed that picks them."""

    name: str = Field(min_length=1)
    max_train: Optional[int] = Field(None, gt=0)
    max_eval: Optional[int] = Field(None, gt=0)
    sample_seed: int = 0
    allow_code_execution: bool = Field(False, description="run model-generated code (in the sandbox) to grade it")
    data_files: Optional[dict[str, str]] = Field(
        None, description="split -> local file in the real dataset's schema (.jsonl/.json/.csv/.parquet), instead of the hub")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class TrainConfig(_Strict):
    epochs: int = Field(1, ge=1)
    max_steps: Optional[int] = Field(None, gt=0, description="overrides epochs when set")
    lr: float = Field(2e-4, gt=0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_steps: int = Field(0, ge=0, description="used when > 0, else warmup_ratio")
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(512, ge=8)
    seed: int = 0
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: Optional[float] = Field(1.0, gt=0)
    logging_steps: int = Field(10, ge=1)
    loss_on_prompt: bool = Field(False, description="also train on prompt tokens (language-model pretraining)")


class EvalConfig(_Strict):
    batch_size: int = Field(16, ge=1)
    max_new_tokens: int = Field(32, ge=1)
    do_sample: bool = False
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    num_samples: int = Field(1, ge=1, description="completions per prompt (pass@k needs >= k, with do_sample)")

    @model_validator(mode="after")
    def _sampling_for_many(self) -> "EvalConfig":
        if self.num_samples > 1 and not self.do_sample:
            raise ValueError("num_samples > 1 needs do_sample: true (greedy decoding repeats one answer)")
        return self


class RunConfig(_Strict):
    """One training run: one model, one method, one task, one seed."""

    suite: str = Field("default", pattern=r"^[A-Za-z0-9_.-]+$")
    model: ModelConfig = ModelConfig()
    method: MethodConfig
    task: TaskConfig
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    output_dir: str = "runs"


class EvalRequest(_Strict):
    """Evaluate a base model on a task (no method, no training)."""

    model: ModelConfig = ModelConfig()
    task: TaskConfig
    eval: EvalConfig = EvalConfig()


class SuiteConfig(_Strict):
    """A grid of runs: methods x tasks x seeds under one protocol."""

    name: str = Field("default", pattern=r"^[A-Za-z0-9_.-]+$")
    model: ModelConfig = ModelConfig()
    methods: list[MethodConfig] = Field(min_length=1)
    tasks: list[TaskConfig] = Field(min_length=1)
    seeds: list[int] = Field([0], min_length=1)
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    output_dir: str = "runs"

    def expand(self) -> list[RunConfig]:
        runs = []
        for method in self.methods:
            for task in self.tasks:
                for seed in self.seeds:
                    runs.append(
                        RunConfig(
                            suite=self.name,
                            model=self.model,
                            method=method.model_copy(update={"lr": None}),
                            task=task,
                            train=self.train.model_copy(update={"seed": seed, "lr": method.lr or self.train.lr}),
                            eval=self.eval,
                            output_dir=self.output_dir,
                        )
                    )
        return runs


# ---------------------------------------------------------------- YAML and overrides


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-4` as a float (YAML 1.1 wants `1.0e-4`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError([("<file>", f"no such config file: {path}")])
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError([("<yaml>", f"not valid YAML: {exc}")], source=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError([("<root>", "the file must hold a mapping of fields")], source=str(path))
    return data


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides (value parsed as YAML) to a copy of a raw config."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError([("--set", f"expected KEY=VALUE like train.lr=1e-4, got {item!r}")])
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if isinstance(child, str) and part in ("method", "task"):
                child = {"name": child}  # expand the shorthand so a field can be set
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise ConfigError([(key, f"cannot set a field inside {part!r}, which is not a mapping")])
            node[part] = child
            node = child
        node[parts[-1]] = parse_yaml(value)
    return raw


# ---------------------------------------------------------------- validation


def _loc(loc: tuple[Any, ...], prefix: str = "") -> str:
    parts = [prefix] if prefix else []
    for item in loc:
        parts.append(f"[{item}]" if isinstance(item, int) else str(item))
    return ".".join(parts).replace(".[", "[") or "<root>"


def _allowed_fields(model_cls: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Walk a model class along an error location to list the fields allowed there."""
    cls: Any = model_cls
    for item in loc[:-1]:
        if isinstance(item, int):
            continue
        field = getattr(cls, "model_fields", {}).get(item)
        if field is None:
            return []
        annotation = field.annotation
        for arg in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                cls = arg
                break
        else:
            return []
    return sorted(getattr(cls, "model_fields", {}))


def _problems(exc: ValidationError, model_cls: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            allowed = _allowed_fields(model_cls, loc)
            message = "unknown field" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        elif err["type"] == "missing":
            message = "required field is missing"
        else:
            message = f"{err['msg']} (got {err.get('input')!r})"
        problems.append((_loc(loc, prefix), message))
    return problems


def _check_method(method: MethodConfig, prefix: str) -> tuple[MethodConfig | None, list[tuple[str, str]]]:
    from peftbench.methods import METHODS

    try:
        spec = METHODS.get(method.name)
    except UnknownNameError as exc:
        return None, [(f"{prefix}.name", str(exc))]
    try:
        params = spec.Params.model_validate(method.params)
    except ValidationError as exc:
        return None, _problems(exc, spec.Params, prefix)
    return MethodConfig(name=method.name, lr=method.lr, **params.model_dump()), []


def _check_task(task: TaskConfig, prefix: str, trains: bool = True) -> list[tuple[str, str]]:
    from peftbench.tasks import TASKS

    try:
        spec = TASKS.get(task.name)
    except UnknownNameError as exc:
        return [(f"{prefix}.name", str(exc))]
    problems = []
    if spec.executes_code and not task.allow_code_execution:
        problems.append((f"{prefix}.allow_code_execution", f"task {task.name!r} grades by running model-generated code; "
                         "set allow_code_execution: true to run it in peftbench's sandbox (off by default)"))
    if task.data_files:
        if spec.using_files is None:
            problems.append((f"{prefix}.data_files", f"task {task.name!r} is generated ({spec.source}); it reads no files"))
        for split, path in task.data_files.items():
            if split not in spec.splits and split != "train":  # own training data for an eval-only task is fine
                problems.append((f"{prefix}.data_files.{split}", f"task {task.name!r} has no split {split!r}; "
                                 f"it has {', '.join(spec.splits)}"))
            elif not Path(path).is_file():
                problems.append((f"{prefix}.data_files.{split}", f"file not found: {path}"))
    if trains and "train" not in spec.splits and "train" not in (task.data_files or {}):
        problems.append((f"{prefix}.name", f"task {task.name!r} is evaluation-only (splits: {', '.join(spec.splits)}); "
                         "train on another task and evaluate this one, or give data_files.train"))
    return problems


def expand_task_groups(tasks: list[TaskConfig]) -> list[TaskConfig]:
    """A group name (e.g. `bbh`) stands for every member task, with the same settings."""
    from peftbench.tasks import TASK_GROUPS

    out = []
    for task in tasks:
        members = TASK_GROUPS.get(task.name)
        out += [task.model_copy(update={"name": m}) for m in members] if members else [task]
    return out


def _validate(model_cls: type[BaseModel], raw: Any, source: str | None) -> BaseModel:
    try:
        return model_cls.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, model_cls), source=source) from None


def validate_run_config(raw: dict[str, Any], source: str | None = None) -> RunConfig:
    """Validate a raw run config and fill every method default, or raise ConfigError."""
    cfg = _validate(RunConfig, raw, source)
    method, problems = _check_method(cfg.method, "method")
    problems += _check_task(cfg.task, "task")
    if problems:
        raise ConfigError(problems, source=source)
    if method.lr:  # the method's own learning rate is the run's
        return cfg.model_copy(update={"method": method.model_copy(update={"lr": None}),
                                      "train": cfg.train.model_copy(update={"lr": method.lr})})
    return cfg.model_copy(update={"method": method})


def validate_eval_request(raw: dict[str, Any], source: str | None = None) -> EvalRequest:
    cfg = _validate(EvalRequest, raw, source)
    problems = _check_task(cfg.task, "task", trains=False)
    if problems:
        raise ConfigError(problems, source=source)
    return cfg


def validate_suite_config(raw: dict[str, Any], source: str | None = None) -> SuiteConfig:
    cfg = _validate(SuiteConfig, raw, source)
    problems: list[tuple[str, str]] = []
    methods = []
    for i, method in enumerate(cfg.methods):
        resolved, found = _check_method(method, f"methods[{i}]")
        methods.append(resolved)
        problems += found
    tasks = expand_task_groups(cfg.tasks)
    for i, task in enumerate(tasks):
        problems += _check_task(task, f"tasks[{i}]")
    if problems:
        raise ConfigError(problems, source=source)
    return cfg.model_copy(update={"methods": methods, "tasks": tasks})


def load_run_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    return validate_run_config(apply_overrides(load_yaml(path), list(overrides)), source=str(path))


def load_suite_config(path: str | Path, overrides: list[str] = ()) -> SuiteConfig:
    return validate_suite_config(apply_overrides(load_yaml(path), list(overrides)), source=str(path))


def to_plain(cfg: BaseModel) -> dict[str, Any]:
    """The fully resolved config as plain data, ready for YAML and hashing."""
    return cfg.model_dump(mode="json")
