"""Measured costs of a run: peak training memory and extra inference FLOPs.

Memory: on CUDA, torch's max allocated bytes during training (reset first); on CPU, the
peak resident memory of this process while training, sampled every 20 ms by a thread
(ru_maxrss cannot be reset, so in a sweep it would carry the largest earlier run). The
metrics say which one was measured.

FLOPs: torch's FlopCounterMode over one forward pass of a 1 x 512-token batch (PEFT-Bench's
PSCP definition), counted the same way for the base and the tuned model; the extra FLOPs
are the difference (soft prompts add virtual tokens, IA3 and adapters add operations,
LoRA-style methods add their low-rank products unless merged). A process counts each
model structure once (`structure_flops`): a sweep's runs of one method on one model differ
in weight values only, which do not change the FLOPs.
"""

from __future__ import annotations

import hashlib
import threading
from contextlib import contextmanager
from typing import Iterator

import psutil
import torch
from torch.utils.flop_counter import FlopCounterMode

from peftbench.allocator import release_freed_memory

FLOP_TOKENS = 512


class PeakMemory:
    """Context manager: `.peak_bytes` and `.kind` after the block."""

    def __init__(self, device: torch.device, interval_s: float = 0.02):
        self.device, self.interval_s = device, interval_s
        self.peak_bytes, self.kind = 0, "cuda_max_allocated" if device.type == "cuda" else "cpu_peak_rss"
        self._stop = threading.Event()

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._stop.wait(self.interval_s):
            self.peak_bytes = max(self.peak_bytes, process.memory_info().rss)

    def __enter__(self) -> "PeakMemory":
        if self.kind == "cuda_max_allocated":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:  # from what this block holds, not what earlier work left in the heap
            release_freed_memory()
            self.peak_bytes = psutil.Process().memory_info().rss
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.kind == "cuda_max_allocated":
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, psutil.Process().memory_info().rss)


def forward_flops(model: torch.nn.Module, tokens: int = FLOP_TOKENS) -> int:
    """FLOPs of one forward pass over a 1 x `tokens` batch (capped at the model's context)."""
    config = getattr(model, "config", None)
    limit = getattr(config, "max_position_embeddings", tokens) or tokens
    device = next(model.parameters()).device
    ids = torch.ones(1, min(tokens, limit), dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(input_ids=ids)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


_COUNTED: dict[str, int] = {}


def structure_key(model: torch.nn.Module) -> str:
    """What a forward pass's FLOPs depend on: the module tree (names and types), every
    parameter's and buffer's name, shape and dtype, and the model's config; not the values."""
    config = getattr(model, "config", None)
    parts = [type(model).__qualname__, config.to_json_string() if hasattr(config, "to_json_string") else repr(config)]
    parts += [f"{name}:{type(module).__qualname__}" for name, module in model.named_modules()]
    parts += [f"{name}:{tuple(t.shape)}:{t.dtype}" for name, t in (*model.named_parameters(), *model.named_buffers())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def structure_flops(model: torch.nn.Module) -> int:
    """`forward_flops`, counted once per process for each model structure (`structure_key`)."""
    key = structure_key(model)
    if key not in _COUNTED:
        _COUNTED[key] = forward_flops(model)
    return _COUNTED[key]


@contextmanager
def measured_memory(device: torch.device) -> Iterator[PeakMemory]:
    with PeakMemory(device) as peak:
        yield peak
