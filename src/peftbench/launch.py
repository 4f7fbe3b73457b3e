"""Where this process stands in a multi-process launch (`accelerate launch`, torchrun), read
from the environment the launcher sets; a plain `peftbench` process is rank 0 of 1. Models
(which device to load onto) and training (how to split a batch) both ask."""

from __future__ import annotations

import os
from typing import Optional

import torch


def world_size() -> int:
    """How many processes train this run (1 unless a launcher set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return process_rank() == 0


def launched_device() -> Optional[torch.device]:
    """The GPU a launched process owns (cuda:LOCAL_RANK), so that eight processes do not all
    load the model onto cuda:0; None when not launched or without CUDA."""
    if world_size() > 1 and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return None
