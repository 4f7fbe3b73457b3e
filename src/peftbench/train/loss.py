"""The SFT loss, with vocabulary logits computed only where a label is scored.

A causal LM's last layer projects every position onto the vocabulary, but SFT scores only
the answer tokens: on the micro target tasks a quarter of the positions. For real
vocabularies (49k for SmolLM2, 152k for Qwen2.5) that projection and its float32 logits
are a large share of a step's time and of its peak memory, all spent on positions whose
loss is ignored. transformers' `logits_to_keep` takes a boolean (batch, length) mask and
projects only the kept positions; the loss is then the same mean over the same tokens as
the model's own (`ForCausalLMLoss`: float32 logits, labels shifted by one). Releases
before 5.23 take no such mask (`models/compat.py`): there the model computes its own.

Models that prepend virtual tokens (peft's prompt tuning and P-tuning) shift every position
by their number of tokens: the mask is widened by as many unscored columns in front (prefix
tuning adds keys and values, not positions; the LoRA + prompt wrapper widens it itself).
AdaLoRA adds its orthogonality penalty to the loss its model computes, so it keeps its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from peftbench.models.position_mask import selects_positions, widened
from peftbench.prompting import IGNORE_INDEX


def adds_to_its_loss(model: nn.Module) -> bool:
    """peft's AdaLoRA adds an orthogonality penalty to the model's loss (only when given labels)."""
    configs = getattr(model, "peft_config", None) or {}
    return any(str(getattr(config, "peft_type", "")).endswith("ADALORA") for config in configs.values())


def scores_selectively(model: nn.Module) -> bool:
    """Whether `answer_loss` can project only the scored positions for this model."""
    return selects_positions(model) and not adds_to_its_loss(model)


def scored_positions(labels: torch.Tensor) -> torch.Tensor:
    """(batch, length) bool: the positions whose next token carries a loss."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return keep


def answer_loss(model: nn.Module, batch: dict[str, torch.Tensor], selective: bool) -> torch.Tensor:
    """Mean cross-entropy over the batch's scored tokens. `selective` (see `scores_selectively`)
    computes logits at those positions only; otherwise the model computes its own loss."""
    # no KV cache in training: it is never read, and transformers only honours packed
    # position ids (block-diagonal attention) when there is none
    if not selective:
        return model(**batch, use_cache=False).loss
    labels = batch["labels"]
    keep = scored_positions(labels)
    inputs = {name: value for name, value in batch.items() if name != "labels"}
    logits = model(**inputs, use_cache=False, logits_to_keep=widened(keep, model)).logits  # (scored tokens, vocab)
    return F.cross_entropy(logits.float(), labels[:, 1:][keep[:, :-1]], reduction="mean")
