"""Log-likelihood scoring: pick the candidate answer the model finds most probable."""

from __future__ import annotations

from typing import Sequence

import torch

from peftbench.progress import progress_bar


@torch.inference_mode()
def continuation_logprobs(
    model, pad_id: int, pairs: Sequence[tuple[list[int], list[int]]], batch_size: int
) -> list[float]:
    """Sum of log p(continuation | context) for each (context ids, continuation ids) pair."""
    device = next(model.parameters()).device
    scores: list[float] = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        seqs = [ctx + cont for ctx, cont in chunk]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, seq in enumerate(seqs):
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logits = logits[:, -width:]  # peft's prompt tuning returns logits for its virtual tokens too
        logprobs = torch.log_softmax(logits, dim=-1)
        for row, (ctx, cont) in enumerate(chunk):
            # token t is predicted by the logits at position t - 1
            positions = torch.arange(len(ctx) - 1, len(ctx) + len(cont) - 1, device=logprobs.device)
            targets = torch.tensor(cont, device=logprobs.device)
            scores.append(logprobs[row, positions, targets].sum().item())
    return scores


def choose(model, tokenizer, contexts: Sequence[list[int]], choices: Sequence[Sequence[list[int]]],
           batch_size: int, show_progress: bool = True) -> list[int]:
    """Index of the most likely choice for each context."""
    picks = []
    with progress_bar(len(contexts), "scoring", show_progress) as advance:
        for start in range(0, len(contexts), batch_size):
            ctx_chunk, choice_chunk = contexts[start : start + batch_size], choices[start : start + batch_size]
            pairs = [(ctx, cont) for ctx, conts in zip(ctx_chunk, choice_chunk) for cont in conts]
            scores = iter(continuation_logprobs(model, tokenizer.pad_token_id, pairs, batch_size * 4))
            for conts in choice_chunk:
                row = [next(scores) for _ in conts]
                picks.append(max(range(len(row)), key=row.__getitem__))
            advance(len(ctx_chunk))
    return picks
