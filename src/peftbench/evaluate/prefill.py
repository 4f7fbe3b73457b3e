"""Prefill of a batch of prompts into a KV cache, running a prefix they all share once.

Few-shot evaluation gives every prompt of a task the same solved examples in front of
its question (GSM8K's 8 shots are ~90% of each prompt). Run as separate rows, that
prefix is computed once per row. Here it is run once, its cache copied to every row,
and only the rows' own tails run batched after it:

    row 0: [shared prefix][pad pad][tail 0 ]
    row 1: [shared prefix][  tail 1        ]

The pads sit between prefix and tail; the attention mask hides them and the position ids
count real tokens only, so every real token sees the same keys at the same positions as
in a plain left-padded batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from peftbench.models.compat import with_cache

# Below this, a separate forward pass for the prefix costs more than it saves.
MIN_SHARED_TOKENS = 16


def pad(sequences: Sequence[list[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of the sequences padded to the longest, on the left or the right."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        span = slice(width - len(seq), width) if left else slice(0, len(seq))
        ids[row, span] = torch.tensor(seq, dtype=torch.long)
        mask[row, span] = 1
    return ids, mask


def left_pad(sequences: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    return pad(sequences, pad_id, left=True)


def left_padded_positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of left-padded rows: each row's first real token is position 0."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def last_logits_only(model) -> dict:
    """`logits_to_keep=1` where the model takes it: the prompt's other positions would each
    cost a vocabulary-wide row of logits (rows x prompt x vocab floats) that nobody reads."""
    import inspect

    return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}


def shared_prefix_length(prompts: Sequence[list[int]]) -> int:
    """Tokens at the start of every prompt, leaving each prompt at least its last token
    (whose logits predict the first new one)."""
    shortest = min(len(p) for p in prompts)
    first = prompts[0]
    length = 0
    while length < shortest - 1 and all(p[length] == first[length] for p in prompts):
        length += 1
    return length


@dataclass
class Prefilled:
    cache: object  # transformers DynamicCache, one row per prompt
    mask: torch.Tensor  # (rows, cached tokens): 1 for a real token
    logits: torch.Tensor  # (rows, vocab): the next-token logits after each prompt

    def next_positions(self) -> torch.Tensor:
        """(rows, 1) position of the token that comes next in each row."""
        return self.mask.sum(-1, keepdim=True)


@torch.inference_mode()
def prefill(model, prompts: Sequence[list[int]], pad_id: int) -> Prefilled:
    """Run prompts (token ids) into a fresh KV cache. A prompt given several times (one row
    per sample) runs once and its cache is copied to its rows; a shared prefix of at least
    MIN_SHARED_TOKENS runs once for the whole batch."""
    where: dict[tuple, int] = {}  # each distinct prompt -> its row in the distinct batch
    owners = [where.setdefault(tuple(p), len(where)) for p in prompts]
    if len(where) == len(prompts):
        return _prefill_distinct(model, prompts, pad_id)
    state = _prefill_distinct(model, [list(p) for p in where], pad_id)
    rows = torch.tensor(owners, device=state.mask.device)
    state.cache.batch_select_indices(rows)
    return Prefilled(state.cache, state.mask[rows], state.logits[rows])


def _prefill_distinct(model, prompts: Sequence[list[int]], pad_id: int) -> Prefilled:
    from transformers import DynamicCache

    device = next(model.parameters()).device
    cache = DynamicCache()
    shared = shared_prefix_length(prompts) if len(prompts) > 1 else 0
    if shared < MIN_SHARED_TOKENS:
        shared = 0
    last_only, cached = last_logits_only(model), with_cache(model, cache)
    mask = torch.ones((len(prompts), shared), dtype=torch.long, device=device)
    if shared:
        prefix = torch.tensor([prompts[0][:shared]], dtype=torch.long, device=device)
        model(input_ids=prefix, position_ids=torch.arange(shared, device=device)[None], use_cache=True,
              **cached, **last_only)
        cache.batch_repeat_interleave(len(prompts))
    ids, tail_mask = (t.to(device) for t in left_pad([p[shared:] for p in prompts], pad_id))
    mask = torch.cat([mask, tail_mask], dim=1)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=shared + left_padded_positions(tail_mask),
                   use_cache=True, **cached, **last_only).logits[:, -1]
    return Prefilled(cache, mask, logits)
