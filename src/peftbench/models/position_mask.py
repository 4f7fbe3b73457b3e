"""Vocabulary logits at chosen positions only: a boolean (batch, length) `logits_to_keep`.

Training scores only answer tokens and log-likelihood scoring only a context's last token
and its continuation; every other position's row of vocabulary logits (49k floats for
SmolLM2, 152k for Qwen2.5) is work and memory nobody reads. transformers 5.23+ slices the
hidden states by such a mask and returns (kept positions, vocab) logits, in row-major order.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from peftbench.models.compat import takes_position_masks
from peftbench.models.loading import transformer_of


def selects_positions(model: nn.Module) -> bool:
    """Whether the model's transformer takes a boolean position mask as `logits_to_keep`."""
    inner = transformer_of(model)
    return "logits_to_keep" in inspect.signature(inner.forward).parameters and takes_position_masks()


def positions_added_in_front(model: nn.Module) -> int:
    """Columns a model puts before the input ids (so before any position mask it is given):
    peft's prompt tuning and P-tuning prepend their virtual tokens' embeddings."""
    configs = getattr(model, "peft_config", None) or {}
    return max((config.num_virtual_tokens for config in configs.values()
                if str(getattr(config, "peft_type", "")).endswith(("PROMPT_TUNING", "P_TUNING"))), default=0)


def widened(keep: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """A (batch, length) position mask over the input ids, for the model's own sequence:
    prefix tuning adds keys and values, not positions, and the LoRA + prompt wrapper widens
    the mask itself."""
    added = positions_added_in_front(model)
    return F.pad(keep, (added, 0), value=False) if added else keep
