"""Checking a config against what exists: methods, tasks, models, the tuning space. The schemas
and YAML loading (config.py, yamlio.py) know nothing of the registries; this module, above
them, does, so every fault is reported at once, before anything loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

from pydantic import BaseModel, ValidationError

from peftbench.config import (EvalConfig, EvalRequest, MethodConfig, ModelConfig, RetentionConfig, RunConfig,  # noqa: F401
                              SuiteConfig, TaskConfig, TrainConfig)
from peftbench.errors import ConfigError, UnknownNameError
from peftbench.sweep.tuning import trial_points, with_point
from peftbench.yamlio import apply_overrides, load_yaml


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
        elif err["type"] == "value_error":  # our own validators' messages say what they got
            message = err["msg"].removeprefix("Value error, ")
        else:
            message = f"{err['msg']} (got {err.get('input')!r})"
        problems.append((_loc(loc, prefix), message))
    return problems


def check_method(method: MethodConfig, prefix: str) -> tuple[MethodConfig | None, list[tuple[str, str]]]:
    from peftbench.methods import METHODS

    try:
        spec = METHODS.get(method.name)
    except UnknownNameError as exc:
        return None, [(f"{prefix}.name", str(exc))]
    try:
        params = spec.Params.model_validate(method.params)
    except ValidationError as exc:
        return None, _problems(exc, spec.Params, prefix)
    return MethodConfig(name=method.name, lr=method.lr, validation_fraction=method.validation_fraction,
                        **params.model_dump()), []


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
    if task.few_shot and spec.shots_from not in spec.splits and spec.shots_from not in (task.data_files or {}):
        problems.append((f"{prefix}.few_shot", f"task {task.name!r} has no {spec.shots_from!r} split to draw solved "
                         f"examples from (splits: {', '.join(spec.splits)}); give data_files.{spec.shots_from} "
                         "or leave few_shot out"))
    from peftbench.metrics import executes_code, is_known_metric

    problems += [(f"{prefix}.metrics", f"unknown metric {m!r}") for m in task.metrics or [] if not is_known_metric(m)]
    if task.metrics and any(executes_code(m) for m in task.metrics) and not spec.executes_code:
        problems.append((f"{prefix}.metrics", f"task {task.name!r} has no unit tests to run: pass@k needs a code task"))
    if task.primary and task.primary not in (task.metrics or spec.metrics):
        problems.append((f"{prefix}.primary", f"task {task.name!r} has no metric {task.primary!r}; it has "
                         f"{', '.join(spec.metrics)}"))
    problems += _missing_packages(task, spec, prefix)
    if task.scoring and task.scoring not in spec.scorings:
        problems.append((f"{prefix}.scoring", f"task {task.name!r} cannot be scored by {task.scoring!r}: it has no "
                         f"candidate answers to compare; it allows {', '.join(spec.scorings)}"))
    for i, other in enumerate(task.transfer or []):
        if other.transfer:
            problems.append((f"{prefix}.transfer[{i}].transfer", "a transfer task is only scored; it has no "
                             "transfer tasks of its own"))
        problems += _check_task(other, f"{prefix}.transfer[{i}]", trains=False)
    if task.eval_split == "validation" and not _has_validation(spec, task):
        problems.append((f"{prefix}.eval_split", _NO_VALIDATION.format(name=task.name, splits=", ".join(spec.splits))))
    elif task.eval_split and task.eval_split != "validation" and task.eval_split not in spec.splits:
        problems.append((f"{prefix}.eval_split", f"task {task.name!r} has no split {task.eval_split!r}; "
                         f"it has {', '.join(spec.splits)}"))
    return problems


def _missing_packages(task: TaskConfig, spec, prefix: str) -> list[tuple[str, str]]:
    """Optional packages the task's data or graders need, named before anything runs."""
    from peftbench.extras import EXTRA_OF, missing_for
    from peftbench.metrics import metric_needs

    needs = {metric_needs(m): f"grading task {task.name!r} by {m}" for m in task.metrics or spec.metrics}
    package = spec.source.removeprefix("package:").split("/")[0] if spec.source.startswith("package:") else None
    if package in EXTRA_OF:
        needs[package] = f"reading the data of task {task.name!r}"
    found = [missing_for(module, purpose) for module, purpose in needs.items()]
    return [(f"{prefix}.name", problem) for problem in found if problem]


def _missing_trainer(modes: list[str]) -> list[tuple[str, str]]:
    from peftbench.extras import missing_for

    problem = missing_for("trl", "train.mode: grpo") if "grpo" in modes else None
    return [("train.mode", problem)] if problem else []


_NO_VALIDATION = ("task {name!r} has no validation split (splits: {splits}); set validation_fraction: 0.1 on the "
                  "task to hold out 10% of its training examples")


# `retention: {tasks: [default]}`: the micro world's general skills for the micro model,
# PEFT-Arena's general suite (BBH, IFEval, NQ) for any other model
DEFAULT_RETENTION = {"micro": ["micro-general"]}


DEFAULT_RETENTION_REAL = ["bbh", "ifeval", "nq"]


def _default_retention(tasks: list[TaskConfig], model_name: Optional[str]) -> list[TaskConfig]:
    out = []
    for task in tasks:
        if task.name != "default":
            out.append(task)
            continue
        names = DEFAULT_RETENTION.get(model_name or "", DEFAULT_RETENTION_REAL)
        out += [task.model_copy(update={"name": name}) for name in names]
    return out


def _check_retention(retention: Optional[RetentionConfig], model_name: Optional[str] = None):
    """Expand `default` and groups in the retention tasks and check each (they are only evaluated)."""
    if retention is None:
        return None, []
    tasks = expand_task_groups(_default_retention(retention.tasks, model_name))
    problems = [p for i, t in enumerate(tasks) for p in _check_task(t, f"retention.tasks[{i}]", trains=False)]
    return retention.model_copy(update={"tasks": tasks}), problems


def validate_retention(tasks: list[str], source: str = "--retention", model_name: Optional[str] = None) -> RetentionConfig:
    """A retention block from task or group names (command line), groups expanded and checked."""
    retention, problems = _check_retention(_validate(RetentionConfig, {"tasks": tasks}, source), model_name)
    if problems:
        raise ConfigError(problems, source=source)
    return retention


def _has_validation(spec, task: TaskConfig) -> bool:
    return bool(task.validation_fraction) or "validation" in spec.splits


def _without_validation(tasks: list[TaskConfig], field: Callable[[int], str]) -> list[tuple[str, str]]:
    """A problem at `field(i)` for each task with no validation split (select_best and
    tuning trials both need one)."""
    from peftbench.tasks import TASKS

    return [(field(i), _NO_VALIDATION.format(name=t.name, splits=", ".join(TASKS.get(t.name).splits)))
            for i, t in enumerate(tasks) if t.name in TASKS and not _has_validation(TASKS.get(t.name), t)]


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
    method, problems = check_method(cfg.method, "method")
    problems += _check_model(cfg.model)
    problems += _check_task(cfg.task, "task")
    if cfg.train.select_best:
        problems += _without_validation([cfg.task], lambda i: "train.select_best")
    retention, found = _check_retention(cfg.retention, cfg.model.name)
    problems += found + _missing_trainer([cfg.train.mode])
    if problems:
        raise ConfigError(problems, source=source)
    cfg = cfg.model_copy(update={"retention": retention})
    update = {"method": method.model_copy(update={"lr": None, "validation_fraction": None})}
    if method.lr:  # the method's own learning rate is the run's
        update["train"] = cfg.train.model_copy(update={"lr": method.lr})
    if method.validation_fraction:  # and its own hold-out
        update["task"] = cfg.task.model_copy(update={"validation_fraction": method.validation_fraction})
    return cfg.model_copy(update=update)


def validate_eval_request(raw: dict[str, Any], source: str | None = None) -> EvalRequest:
    cfg = _validate(EvalRequest, raw, source)
    problems = _check_task(cfg.task, "task", trains=False)
    if problems:
        raise ConfigError(problems, source=source)
    return cfg


def _check_modes(cfg: "SuiteConfig") -> list[tuple[str, str]]:
    """`modes` runs each mode with the suite's train block: it must suit every one of them."""
    problems = []
    for mode in cfg.modes or []:
        try:
            TrainConfig.model_validate({**cfg.train.model_dump(), "mode": mode})
        except ValidationError as exc:
            problems += [("modes", f"{mode}: {error['msg']}") for error in exc.errors()]
    if cfg.modes and cfg.tuning:
        problems.append(("modes", "tuning searches one training mode; drop modes or tuning"))
    return problems


def _repeated(items: list, field: str, what: str) -> list[tuple[str, str]]:
    """A problem for each item equal to an earlier one: it would run (and show) twice."""
    problems, first = [], {}
    for i, item in enumerate(items):
        key = json.dumps(item, sort_keys=True, default=str)
        if key in first:
            problems.append((f"{field}[{i}]", f"repeats {field}[{first[key]}] ({what}); list it once"))
        first.setdefault(key, i)
    return problems


def _check_model(model: ModelConfig) -> list[tuple[str, str]]:
    """A model name that can be nothing but a missing local path, or a hub id that cannot be
    fetched offline, is refused before anything loads."""
    from peftbench.models.names import model_name_problem

    problem = model_name_problem(model.name, model.gguf_file)
    return [("model.name", problem)] if problem else []


def validate_suite_config(raw: dict[str, Any], source: str | None = None) -> SuiteConfig:
    cfg = _validate(SuiteConfig, raw, source)
    problems: list[tuple[str, str]] = _check_model(cfg.model)
    methods = []
    for i, method in enumerate(cfg.methods):
        resolved, found = check_method(method, f"methods[{i}]")
        methods.append(resolved)
        problems += found
    problems += _repeated([m.model_dump() if m else i for i, m in enumerate(methods)], "methods",
                          "the same method with the same settings")
    tasks = expand_task_groups(cfg.tasks)
    problems += _repeated([t.model_dump() for t in tasks], "tasks", "the same task with the same settings")
    problems += _repeated(cfg.seeds, "seeds", "the same seed")
    for i, task in enumerate(tasks):
        problems += _check_task(task, f"tasks[{i}]")
    if cfg.train.select_best:
        problems += _without_validation(tasks, lambda i: "train.select_best")
    if cfg.tuning:  # trials are scored on validation, never on test
        problems += _without_validation(tasks, lambda i: f"tasks[{i}].validation_fraction")
    retention, found = _check_retention(cfg.retention, cfg.model.name)
    problems += found
    problems += _check_modes(cfg) + _missing_trainer([cfg.train.mode, *(cfg.modes or [])])
    if problems:
        raise ConfigError(problems, source=source)
    cfg = cfg.model_copy(update={"methods": methods, "tasks": tasks, "retention": retention})
    if cfg.tuning:
        try:
            check_spaces(cfg)
        except ConfigError as exc:
            raise ConfigError(exc.problems, source=source) from None
    return cfg


def load_run_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    return validate_run_config(apply_overrides(load_yaml(path), list(overrides)), source=str(path))


def load_suite_config(path: str | Path, overrides: list[str] = ()) -> SuiteConfig:
    return validate_suite_config(apply_overrides(load_yaml(path), list(overrides)), source=str(path))


def check_spaces(suite: SuiteConfig) -> None:
    """Raise ConfigError now (at validation / dry-run) if a method's space cannot give the budget."""
    if not suite.tuning:
        return
    problems = []
    for i, method in enumerate(suite.methods):
        for point in trial_points(suite.tuning, method):
            problems += check_method(with_point(method, point), f"tuning point {point} of methods[{i}]")[1]
    if problems:
        raise ConfigError(problems)
