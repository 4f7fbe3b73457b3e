"""The transformers releases peftbench runs on, bridged where their APIs differ.

peftbench is developed on transformers 5.23 and also runs on 5.19-5.20, the releases vLLM
0.32-0.33 pin (`eval.backend: vllm` needs both in one environment), and on 5.24. Three
differences matter:

- 5.23 renamed gradient checkpointing to activation checkpointing
  (`activation_checkpointing_enable`, `is_activation_checkpointing`);
- 5.23 slices hidden states by a boolean (batch, length) `logits_to_keep`, which the
  scored-positions loss uses (`train/loss.py`); 5.19 takes a count or a 1D index only,
  so there the model computes its own loss (the same value, at the old cost);
- 5.24 renamed the forward pass's `past_key_values` to `cache`, and the training
  arguments' `gradient_checkpointing` to `activation_checkpointing`. peft 0.21's
  generation hooks for soft prompts and prefixes still look for `past_key_values`
  (`peft_generation_sees_the_cache`).
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from typing import Iterator

from torch import nn

_NON_REENTRANT = {"use_reentrant": False}  # works when the inputs need no grad (frozen embeddings under PEFT)


def enable_checkpointing(model: nn.Module) -> None:
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=_NON_REENTRANT)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=_NON_REENTRANT)


def disable_checkpointing(model: nn.Module) -> None:
    if hasattr(model, "activation_checkpointing_disable"):
        model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_disable()


def is_checkpointing(model: nn.Module) -> bool:
    if hasattr(type(model), "is_activation_checkpointing"):
        return model.is_activation_checkpointing
    return model.is_gradient_checkpointing


def takes_position_masks() -> bool:
    """Whether a boolean (batch, length) `logits_to_keep` selects positions
    (transformers' `slice_logits_to_keep`)."""
    import transformers.modeling_utils as modeling_utils

    return hasattr(modeling_utils, "slice_logits_to_keep")


def with_cache(model: nn.Module, cache) -> dict:
    """The keyword that hands `model.forward` a KV cache: `cache` from transformers 5.24
    (`past_key_values` is deprecated there, to go in 5.40), `past_key_values` before."""
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    return {name: cache}


def checkpointing_argument(args_class: type, on: bool) -> dict:
    """Gradient checkpointing on or off for a TrainingArguments subclass (TRL's configs turn
    it on by default): `activation_checkpointing` from transformers 5.24, the old name before."""
    import dataclasses

    names = {field.name for field in dataclasses.fields(args_class)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": on}


@contextmanager
def peft_generation_sees_the_cache(model: nn.Module) -> Iterator[None]:
    """Hand peft's generation hooks the KV cache under the name they read, while `generate` runs.

    peft's `prepare_inputs_for_generation` injects a prefix (prefix tuning) or the virtual
    token embeddings (prompt tuning, P-tuning) when the inputs it gets from the base model
    carry no cache yet, and only then. From transformers 5.24 those inputs call the cache
    `cache`, so peft saw none at any step: it put the prefix under `past_key_values`, which
    the model then ignored for the `cache` it was also given, and prepended the virtual
    tokens again at every decoding step. Here peft gets the cache as `past_key_values`, and
    the model gets what peft returns under the name its forward takes (tested against
    greedy decoding by whole forward passes)."""
    from_base = getattr(model, "base_model_prepare_inputs_for_generation", None)
    if from_base is None:  # not a peft model
        yield
        return
    peft_hook = model.prepare_inputs_for_generation
    (model_keyword,) = with_cache(model.get_base_model(), None)

    def for_peft(*args, **kwargs):
        return _renamed(from_base(*args, **kwargs), "cache", "past_key_values")

    def for_the_model(*args, **kwargs):
        return _renamed(peft_hook(*args, **kwargs), "past_key_values", model_keyword)

    model.base_model_prepare_inputs_for_generation = for_peft
    model.prepare_inputs_for_generation = for_the_model  # peft's generate hands the base model this
    try:
        yield
    finally:
        model.base_model_prepare_inputs_for_generation = from_base
        del model.prepare_inputs_for_generation  # the class's method again


def _renamed(inputs: dict, old: str, new: str) -> dict:
    if old in inputs and new not in inputs:
        inputs[new] = inputs.pop(old)
    return inputs
