"""Which examples a run uses: the registered task as a config resolves it (local files,
few-shot, scoring, metrics), and its train / validation / scored splits."""

from __future__ import annotations

import dataclasses
import random

from peftbench.config import TaskConfig
from peftbench.errors import PeftbenchError
from peftbench.tasks.base import TASKS
from peftbench.tasks.sources import DataSourceError


def resolve_task(task_cfg: TaskConfig):
    """The registered task, reading the config's local files when it names some, with the
    config's number of few-shot examples when it gives one."""
    task = TASKS.get(task_cfg.name)
    task = task.with_files(task_cfg.data_files) if task_cfg.data_files else task
    task = task.with_few_shot(task_cfg.few_shot) if task_cfg.few_shot is not None else task
    task = task.scored_by(task_cfg.scoring) if task_cfg.scoring else task
    task = dataclasses.replace(task, metrics=tuple(task_cfg.metrics), primary=None) if task_cfg.metrics else task
    task = task.ranked_by(task_cfg.primary) if task_cfg.primary else task
    return dataclasses.replace(task, max_new_tokens=task_cfg.max_new_tokens) if task_cfg.max_new_tokens else task


def hold_out(examples: list, fraction: float, seed: int) -> tuple[list, list]:
    """Split training examples into (train, validation): a seeded `fraction` held out."""
    n_held = max(1, round(fraction * len(examples)))
    held = set(random.Random(seed).sample(range(len(examples)), n_held))
    return ([e for i, e in enumerate(examples) if i not in held], [e for i, e in enumerate(examples) if i in held])


def split_data(task, task_cfg: TaskConfig, need_train: bool = True, need_validation: bool = False) -> dict[str, list]:
    """The run's examples: train, validation (held out of train, or the task's own; read
    only when needed) and the split it is scored on (`task_cfg.eval_split`, default the
    task's test split)."""
    eval_split = task_cfg.eval_split or task.eval_split
    eval_cap = task_cfg.max_eval or task.max_eval
    need_validation = need_validation or eval_split == "validation"
    data: dict[str, list] = {}
    if need_train or task_cfg.validation_fraction:  # a hold-out changes what train is
        data["train"] = task.examples("train", task_cfg.max_train or task.max_train, task_cfg.sample_seed)
    if task_cfg.validation_fraction:
        data["train"], data["validation"] = hold_out(data["train"], task_cfg.validation_fraction, task_cfg.sample_seed)
    elif need_validation:
        if "validation" not in task.splits:
            raise PeftbenchError(f"task {task.name!r} has no validation split ({', '.join(task.splits)}); "
                                 "set task.validation_fraction to hold some training examples out")
        data["validation"] = task.examples("validation", eval_cap, task_cfg.sample_seed)
    if eval_split == "validation":
        data["eval"] = data["validation"]
    else:
        data["eval"] = task.examples(eval_split, eval_cap, task_cfg.sample_seed)
    for role, examples in data.items():
        if not examples:  # an empty training set would loop forever looking for a batch
            split = {"eval": eval_split}.get(role, role)
            origin = (task_cfg.data_files or {}).get("train" if role == "validation" else split) or task.source
            raise DataSourceError(f"{origin}: task {task.name!r} has no {split} examples; give a file with rows "
                                  "in the dataset's schema")
    return data


def eval_examples(task, task_cfg: TaskConfig):
    return split_data(task, task_cfg, need_train=False)["eval"]
