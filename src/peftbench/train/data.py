"""Batches for supervised fine-tuning: encode, shuffle per epoch with a seed, pad right.

Batching lives apart from the loop so packing or padding-free batches (a later
performance step) can replace `pad_batch` without touching the optimiser code.
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
