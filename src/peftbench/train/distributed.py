"""Data parallelism for one large run across the processes `accelerate launch` starts:

    accelerate launch --multi_gpu --num_processes 8 -m peftbench train run.yaml

Every process loads the model onto its own device and walks the same seeded batch order;
each trains on its slice of every batch, and DDP, set up by accelerate, averages the
gradients. Each process's loss is weighted by its share of the batch's loss tokens, so the
averaged gradient is the gradient of the mean over the whole batch, which is what one process
computes (tested: two processes end with the weights one process reaches). `train.batch_size`
is therefore the global batch. The main process alone writes the run directory and
evaluates.

On CPU, `accelerate launch --cpu` starts a single process; `--multi_gpu` on a machine
without GPUs (or torchrun) starts several, which then meet over gloo. Without a launcher,
none of this is touched: `solo()` passes every call straight through.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Sequence

import torch
from torch import nn

from peftbench.launch import world_size
from peftbench.prompting import IGNORE_INDEX


def loss_tokens(batch: Sequence) -> int:
    """Tokens that carry a loss in a batch of encoded examples: the labels after the causal
    shift (no position predicts an example's first token)."""
    return sum(sum(1 for label in e.labels[1:] if label != IGNORE_INDEX) for e in batch)


class Solo:
    """One process: the training loop's calls go straight through."""

    rank, world = 0, 1

    def __init__(self, model: nn.Module):
        self.model = model  # what the loop calls forward on

    def shard(self, batch: list) -> list:
        return batch

    def weighted(self, loss: torch.Tensor, batch: Sequence, mine: Sequence) -> torch.Tensor:
        return loss

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def sync(self, last_micro_batch: bool):
        return nullcontext()

    def mean(self, value: torch.Tensor) -> float:
        return value.item()


class Team(Solo):
    """One of several processes training the same run (see the module note)."""

    def __init__(self, model: nn.Module, device: torch.device):
        from accelerate import Accelerator

        # cpu=True is what lets accelerate form a gloo group on CPU; mixed precision stays
        # ours (train.precision), so accelerate adds no autocast of its own
        self.accelerator = Accelerator(cpu=device.type == "cpu", mixed_precision="no")
        if self.accelerator.num_processes != world_size():
            raise RuntimeError(f"accelerate formed a group of {self.accelerator.num_processes} processes, "
                               f"the launcher started {world_size()}")
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        self.model = self.accelerator.prepare_model(model)  # DDP around the same parameters

    def shard(self, batch: list) -> list:
        mine = batch[self.rank :: self.world]
        # a last batch smaller than the team: the spare processes repeat an example, since every
        # process must join each gradient average (for that batch alone, all weigh 1/world)
        return mine or [batch[self.rank % len(batch)]]

    def weighted(self, loss: torch.Tensor, batch: Sequence, mine: Sequence) -> torch.Tensor:
        # loss is the mean over this process's loss tokens; DDP averages over processes, so
        # weighting by world x (my tokens / the batch's tokens) gives the whole batch's mean
        share = loss_tokens(mine) / max(loss_tokens(batch), 1) if len(batch) >= self.world else 1 / self.world
        return loss * (self.world * share)

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss)

    def sync(self, last_micro_batch: bool):
        # gradients are averaged once per optimiser step, not after every accumulated micro batch
        return nullcontext() if last_micro_batch else self.accelerator.no_sync(self.model)

    def mean(self, value: torch.Tensor) -> float:
        return self.accelerator.reduce(value.detach().clone(), reduction="mean").item()


def team_for(model: nn.Module, device: torch.device) -> Solo:
    """A Team when a launcher started several processes, else Solo."""
    return Team(model, device) if world_size() > 1 else Solo(model)
