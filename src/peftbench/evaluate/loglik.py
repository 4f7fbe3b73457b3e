"""Log-likelihood scoring: pick the candidate answer the model finds most probable."""

from __future__ import annotations

from typing import Sequence

import torch

from peftbench.evaluate.prefill import pad
from peftbench.models.compat import with_cache
from peftbench.models.position_mask import selects_positions, widened
from peftbench.progress import progress_bar


def _logits_at(model, ids: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor) -> list[torch.Tensor]:
    """Per row, the logits (kept positions, vocab) at its `keep` positions of a right-padded
    batch. Where the model takes a position mask only those rows of vocabulary logits are
    computed: a review of 500 tokens scored by its last one would otherwise cost 500 rows of
    49k floats each, times the batch."""
    device = next(model.parameters()).device
    ids, mask = ids.to(device), mask.to(device)
    if selects_positions(model):
        kept = model(input_ids=ids, attention_mask=mask, logits_to_keep=widened(keep, model).to(device)).logits
        return list(kept.split(keep.sum(1).tolist()))
    logits = model(input_ids=ids, attention_mask=mask).logits
    logits = logits[:, -ids.shape[1]:]  # peft's prompt tuning returns logits for its virtual tokens too
    return [logits[row, keep[row].to(device)] for row in range(ids.shape[0])]


@torch.inference_mode()
def continuation_logprobs(
    model, pad_id: int, pairs: Sequence[tuple[list[int], list[int]]], batch_size: int
) -> list[float]:
    """Sum of log p(continuation | context) for each (context ids, continuation ids) pair."""
    scores: list[float] = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        ids, mask = pad([ctx + cont for ctx, cont in chunk], pad_id, left=False)
        keep = torch.zeros_like(ids, dtype=torch.bool)
        for row, (ctx, cont) in enumerate(chunk):
            keep[row, len(ctx) - 1 : len(ctx) + len(cont) - 1] = True  # token t is predicted at t - 1
        for (_, cont), logits in zip(chunk, _logits_at(model, ids, mask, keep)):
            logprobs = logits.float().log_softmax(-1)
            targets = torch.tensor(cont, device=logprobs.device)
            scores.append(logprobs[torch.arange(len(cont), device=logprobs.device), targets].sum().item())
    return scores


def shares_context(model) -> bool:
    """Whether the choices of a question can share one forward pass of its context: a plain
    transformers model (base, merged or fully tuned) takes a KV cache and position ids as
    given. Wrapped models (soft prompts, unmerged adapters) score each sequence whole."""
    from transformers import PreTrainedModel

    return isinstance(model, PreTrainedModel)


@torch.inference_mode()
def shared_context_logprobs(model, pad_id: int, contexts: Sequence[list[int]],
                            choices: Sequence[Sequence[list[int]]]) -> list[list[float]]:
    """Sum of log p(choice | context) for every choice of every context, running each
    context once: a question with k choices would otherwise run its context k times, and
    the context is most of the tokens (a long review and "positive"/"negative").

    Contexts are left-padded so they all end in the same column (a prefix they all share,
    few-shot examples, runs once: `prefill`); their KV cache is copied to one row per
    choice, and the choices' tokens (right-padded) continue from there. Only the logits
    that score a token are computed: the context's last position, then the continuations'."""
    from peftbench.evaluate.prefill import prefill

    device = next(model.parameters()).device
    state = prefill(model, contexts, pad_id)
    cache, mask = state.cache, state.mask
    first = state.logits.float().log_softmax(-1)
    owner = [row for row, options in enumerate(choices) for _ in options]
    options = [option for row_options in choices for option in row_options]
    scores = [float(first[row, option[0]]) if option else 0.0 for row, option in zip(owner, options)]
    width = max(len(option) for option in options) - 1  # a choice's last token is only predicted
    if width > 0:
        index = torch.tensor(owner, device=device)
        cache.batch_select_indices(index)
        follow = torch.full((len(options), width), pad_id, dtype=torch.long, device=device)
        follow_mask = torch.zeros_like(follow)
        for r, option in enumerate(options):
            if len(option) > 1:
                follow[r, : len(option) - 1] = torch.tensor(option[:-1], device=device)
                follow_mask[r, : len(option) - 1] = 1
        follow_positions = state.next_positions()[index] + torch.arange(width, device=device)
        logits = model(input_ids=follow, attention_mask=torch.cat([mask[index], follow_mask], dim=1),
                       position_ids=follow_positions, use_cache=True, **with_cache(model, cache)).logits
        logprobs = logits.float().log_softmax(-1)
        for r, option in enumerate(options):
            if len(option) > 1:
                steps = torch.arange(len(option) - 1, device=device)
                scores[r] += float(logprobs[r, steps, torch.tensor(option[1:], device=device)].sum())
    ordered = iter(scores)
    return [[next(ordered) for _ in row_options] for row_options in choices]


@torch.inference_mode()
def next_token_logprobs(model, pad_id: int, contexts: Sequence[list[int]], choices: Sequence[Sequence[list[int]]],
                        batch_size: int) -> list[list[float]]:
    """log p(choice | context) when every choice is one token: one forward pass of the
    context alone gives them all (a sentiment label against a long review, through a
    soft prompt that cannot share a cache)."""
    out: list[list[float]] = []
    for start in range(0, len(contexts), batch_size):
        chunk = contexts[start : start + batch_size]
        ids, mask = pad(chunk, pad_id, left=False)
        keep = torch.zeros_like(ids, dtype=torch.bool)
        keep[torch.arange(len(chunk)), torch.tensor([len(ctx) - 1 for ctx in chunk])] = True
        for row, logits in enumerate(_logits_at(model, ids, mask, keep)):
            logprobs = logits[0].float().log_softmax(-1)
            out.append([float(logprobs[option[0]]) for option in choices[start + row]])
    return out


def _separate_logprobs(model, pad_id: int, contexts, choices, batch_size: int) -> list[list[float]]:
    if all(len(option) == 1 for options in choices for option in options):
        return next_token_logprobs(model, pad_id, contexts, choices, batch_size * 2)
    pairs = [(ctx, cont) for ctx, conts in zip(contexts, choices) for cont in conts]
    scores = iter(continuation_logprobs(model, pad_id, pairs, batch_size * 4))
    return [[next(scores) for _ in conts] for conts in choices]


def choose(model, tokenizer, contexts: Sequence[list[int]], choices: Sequence[Sequence[list[int]]],
           batch_size: int, show_progress: bool = True) -> list[int]:
    """Index of the most likely choice for each context (`batch_size` contexts at a time).
    Contexts are batched longest first, so a batch pads to a length its rows nearly share
    (IMDB reviews run from 60 to 1,400 tokens: in arrival order most of a batch would be
    padding); the picks come back in the contexts' order."""
    picks: list[int] = [0] * len(contexts)
    shared = shares_context(model)
    order = sorted(range(len(contexts)), key=lambda i: -(len(contexts[i]) + max(map(len, choices[i]))))
    with progress_bar(len(contexts), "scoring", show_progress) as advance:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            ctx_chunk, choice_chunk = [contexts[i] for i in batch], [choices[i] for i in batch]
            if shared:
                rows = shared_context_logprobs(model, tokenizer.pad_token_id, ctx_chunk, choice_chunk)
            else:
                rows = _separate_logprobs(model, tokenizer.pad_token_id, ctx_chunk, choice_chunk, batch_size)
            for i, row in zip(batch, rows):
                picks[i] = max(range(len(row)), key=row.__getitem__)
            advance(len(ctx_chunk))
    return picks
