"""`eval.batch_size: auto`: as many rows per batch as a memory budget holds.

Bigger batches are the largest lever on evaluation speed: one decoding step of 256 rows
costs little more than one of 16 on a small model, and sorted by length they carry little
padding. What limits them is memory. For generation, that is the KV cache, which grows
with rows x (prompt + new tokens); for log-likelihood scoring it is the logits of every
position. The budget is half the free GPU memory, or 1 GiB on CPU, and each batch is
sized for its own widest row, so short prompts get larger batches than long ones.
"""

from __future__ import annotations

import torch

from peftbench.config import EvalConfig
from peftbench.models.loading import transformer_of

MAX_ROWS = 256  # beyond this a step is no cheaper per row, and a batch that fails costs more
CPU_BUDGET_BYTES = 1 << 30
GPU_FREE_FRACTION = 0.5  # the rest: activations, the allocator's slack, other processes


def memory_budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(GPU_FREE_FRACTION * free)
    return CPU_BUDGET_BYTES


def _text_config(model):
    """The language model's config, inside any adapter or hand-written wrapper."""
    config = transformer_of(model).config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def kv_bytes_per_token(model) -> int:
    """Bytes of key and value cache that one token of one row takes, over all layers."""
    config = _text_config(model)
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    element = next(model.parameters()).element_size()
    return 2 * config.num_hidden_layers * kv_heads * head_dim * element


def _rows(budget: int, per_row: int) -> int:
    return max(1, min(MAX_ROWS, budget // max(per_row, 1)))


def generation_rows(model, cfg: EvalConfig, prompt_tokens: int, budget: int | None = None) -> int:
    """Rows for a generation batch whose widest prompt has `prompt_tokens` tokens."""
    if cfg.batch_size != "auto":
        return cfg.batch_size
    budget = memory_budget(next(model.parameters()).device) if budget is None else budget
    logits = _text_config(model).vocab_size * 4  # one float32 row of logits per step
    return _rows(budget, kv_bytes_per_token(model) * (prompt_tokens + cfg.max_new_tokens) + logits)


def scoring_rows(model, cfg: EvalConfig, width: int, sequences_per_row: int = 1, budget: int | None = None,
                 logit_positions: int | None = None) -> int:
    """Rows for a log-likelihood batch of sequences up to `width` tokens: the logits of
    `logit_positions` positions (default: every one), in float32, twice (they and their
    log-softmax), and the KV cache. A row that is scored as `sequences_per_row` sequences (a
    question with that many choices) counts that often. Scoring that shares a context's
    forward pass computes logits only where a token is scored: a long review then costs its
    cache, not 1,400 positions of a 49k vocabulary."""
    if cfg.batch_size != "auto":
        return cfg.batch_size
    budget = memory_budget(next(model.parameters()).device) if budget is None else budget
    positions = width if logit_positions is None else logit_positions
    sequences = _rows(budget, 2 * positions * _text_config(model).vocab_size * 4 + kv_bytes_per_token(model) * width)
    return max(1, sequences // sequences_per_row)
