"""Batches for supervised fine-tuning: encode, shuffle per epoch with a seed, then either
pad right (`pad_batch`) or pack (`pack_batch`).

A packed batch holds the same examples as the padded one, laid end to end in as few rows
as fit (rows as wide as the longest example), with position ids restarting at 0 for each
example and no attention mask: transformers then builds a block-diagonal causal mask from
the position ids (for eager, SDPA and flash attention alike), so packed examples never
attend to each other. The loss is the mean over the same answer tokens, so one optimiser
step sees the same objective; only the padding work is gone.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch

from peftbench.prompting import IGNORE_INDEX, EncodedExample, encode_for_training
from peftbench.tasks.base import Example


def encode_examples(
    tokenizer, examples: Sequence[Example], max_length: int, loss_on_prompt: bool = False
) -> list[EncodedExample]:
    return [encode_for_training(tokenizer, e.prompt, e.answer, max_length, loss_on_prompt) for e in examples]


def pad_batch(batch: Sequence[EncodedExample], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(e.input_ids) for e in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        attention[row, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def epoch_batches(
    encoded: Sequence[EncodedExample], batch_size: int, seed: int, epoch: int, group_by_length: bool = False
) -> Iterator[list[EncodedExample]]:
    """One epoch in a shuffled order that depends only on (seed, epoch).

    `group_by_length` (HF's trick): within windows of 50 batches of the shuffled order,
    examples of similar length share a batch, and the batches are shuffled again. Padding
    is then a few tokens instead of up to the longest example of a random batch.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(encoded), generator=generator).tolist()
    if group_by_length:
        window = 50 * batch_size
        grouped = []
        for start in range(0, len(order), window):
            grouped += sorted(order[start : start + window], key=lambda i: len(encoded[i].input_ids))
        batches = [grouped[start : start + batch_size] for start in range(0, len(grouped), batch_size)]
        for b in torch.randperm(len(batches), generator=generator).tolist():
            yield [encoded[i] for i in batches[b]]
        return
    for start in range(0, len(order), batch_size):
        yield [encoded[i] for i in order[start : start + batch_size]]


def _first_fit_rows(lengths: Sequence[int], width: int) -> list[list[int]]:
    """Example indices grouped into rows of at most `width` tokens (first fit, longest first)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, free in enumerate(room) if free >= lengths[i]), None)
        if row is None:
            rows.append([])
            room.append(width)
            row = len(rows) - 1
        rows[row].append(i)
        room[row] -= lengths[i]
    return rows


def pack_batch(batch: Sequence[EncodedExample], pad_id: int) -> dict[str, torch.Tensor]:
    """The batch packed into rows (see the module note): input_ids, labels, position_ids."""
    lengths = [len(e.input_ids) for e in batch]
    width = max(lengths)
    rows = _first_fit_rows(lengths, width)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, members in enumerate(rows):
        at = 0
        for i in members:
            example, n = batch[i], lengths[i]
            input_ids[r, at : at + n] = torch.tensor(example.input_ids)
            labels[r, at : at + n] = torch.tensor(example.labels)
            # the loss at the previous example's last token would predict this first token:
            # in a padded batch no position predicts a row's first token, so none does here
            labels[r, at] = IGNORE_INDEX
            positions[r, at : at + n] = torch.arange(n)
            at += n
        # the padding tail is a sequence of its own (positions from 0): nothing attends to it
        positions[r, at:] = torch.arange(width - at)
    return {"input_ids": input_ids, "labels": labels, "position_ids": positions}


def real_tokens(batch: Sequence[EncodedExample]) -> int:
    return sum(len(e.input_ids) for e in batch)


BATCHERS = {"padded": pad_batch, "packed": pack_batch}
