"""What a suite will cost, before anything trains (`peftbench run --dry-run`).

Parameters come from the model's config alone, the model built on the meta device (no
weights, no memory), with the method attached there too; training examples and
optimiser steps come from the task data when it is at hand (generated micro tasks,
local files, a hub cache), otherwise from the size cap. Anything that cannot be known
offline is shown as unknown, with the reason, rather than guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import torch

from peftbench.config import RunConfig, TaskConfig, TrainConfig


@dataclass
class RunEstimate:
    base_params: Optional[int]
    trainable_params: Optional[int]
    train_examples: Optional[int]
    optimizer_steps: Optional[int]
    note: str = ""


@lru_cache(maxsize=None)
def _meta_model_config(name: str, gguf_file: Optional[str], revision: Optional[str], trust_remote_code: bool):
    """The model's config, or None when it cannot be had (offline, not cached); cached either way."""
    from transformers import AutoConfig

    from peftbench.models.gguf import resolve_gguf
    from peftbench.models.loading import resolve_source

    try:
        gguf = resolve_gguf(name, gguf_file, revision)
        if gguf is not None:  # read from the file's metadata: a dry run need not dequantise anything
            return AutoConfig.from_pretrained(gguf.source, gguf_file=gguf.file, revision=revision)
        return AutoConfig.from_pretrained(resolve_source(name), revision=revision, trust_remote_code=trust_remote_code)
    except Exception:
        return None


@lru_cache(maxsize=None)
def _params_cached(model_json: str, method_json: str) -> tuple[Optional[int], Optional[int], str]:
    from peftbench.config import MethodConfig, ModelConfig

    return _count(ModelConfig.model_validate_json(model_json), MethodConfig.model_validate_json(method_json))


def _count(model_cfg, method_cfg) -> tuple[Optional[int], Optional[int], str]:
    from transformers import AutoModelForCausalLM

    from peftbench.cost.params import count_parameters
    from peftbench.methods import METHODS, MethodContext

    config = _meta_model_config(model_cfg.name, model_cfg.gguf_file, model_cfg.revision, model_cfg.trust_remote_code)
    if config is None:  # offline and not cached: the usual case for big hub models here
        return None, None, f"config of {model_cfg.name!r} not available offline"
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    _, base = count_parameters(model)
    method = METHODS.get(method_cfg.name)
    try:
        tuned = method.attach(model, method.params(method_cfg.params), MethodContext(total_steps=1000))
        trainable, _ = count_parameters(tuned)
    except Exception as error:  # e.g. PiSSA's SVD needs real weights
        return base, None, f"{method_cfg.name}: trainable count needs real weights ({type(error).__name__})"
    return base, trainable, ""


@lru_cache(maxsize=None)
def _train_size(task_json: str) -> Optional[int]:
    from peftbench.tasks.select import resolve_task

    task_cfg = TaskConfig.model_validate_json(task_json)
    try:
        return len(resolve_task(task_cfg).examples("train", task_cfg.max_train, task_cfg.sample_seed))
    except Exception:
        return task_cfg.max_train  # data not at hand: the cap is the best bound there is


def _steps(examples: Optional[int], train: TrainConfig) -> Optional[int]:
    if train.max_steps:
        return train.max_steps
    if examples is None:
        return None
    return train.epochs * math.ceil(math.ceil(examples / train.batch_size) / train.grad_accum)


def estimate_run(cfg: RunConfig) -> RunEstimate:
    base, trainable, note = _params_cached(cfg.model.model_dump_json(), cfg.method.model_dump_json())
    examples = _train_size(cfg.task.model_dump_json())
    if examples is None:
        note = "; ".join(filter(None, [note, f"{cfg.task.name}: data not available offline and no max_train"]))
    return RunEstimate(base, trainable, examples, _steps(examples, cfg.train), note)


# What makes one run of a grid longer than another, for scheduling only (the order never
# changes a result). Measured on real-sentiment (SmolLM2-135M, 2 workers on 2 cores): soft
# prompts, which cannot pack and pad their batches instead, took 1.5x LoRA's time, and full
# fine-tuning, with gradients and AdamW state for every weight, 1.4x. An RL run samples
# completions at every step: minutes where an SFT run of the same steps takes seconds.
UNPACKED_COST = 1.5
ALL_WEIGHTS_COST = 1.4
RL_COST = 10.0


def relative_cost(cfg: RunConfig) -> float:
    """A rough figure of a run's time relative to the others of its grid: examples trained on,
    times what the method and the mode add per example."""
    from peftbench.methods import METHODS

    estimate = estimate_run(cfg)
    examples = (estimate.optimizer_steps or 1) * cfg.train.batch_size * cfg.train.grad_accum
    cost = float(examples)
    method = METHODS.get(cfg.method.name)
    batching = cfg.train.batching
    if batching == "padded" or (batching == "auto" and not method.packs(method.params(cfg.method.params))):
        cost *= UNPACKED_COST
    if estimate.trainable_params and estimate.base_params and estimate.trainable_params >= estimate.base_params / 2:
        cost *= ALL_WEIGHTS_COST
    if cfg.train.mode == "grpo":
        cost *= RL_COST
    return cost


def longest_first(runs: list[RunConfig]) -> list[RunConfig]:
    """The runs, the costliest first (stable among equals): workers that claim runs in this
    order end together, where in the grid's order the last long run finishes alone while
    the other workers sit idle (real-sentiment on 2 workers: 161 s of one worker's time)."""
    costs = [relative_cost(cfg) for cfg in runs]
    return [runs[i] for i in sorted(range(len(runs)), key=lambda i: -costs[i])]
