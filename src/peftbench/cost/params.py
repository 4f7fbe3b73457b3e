"""Parameter counts and adapter size: the cheapest, exact part of a method's cost."""

from __future__ import annotations

from pathlib import Path

from torch import nn


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) over unique parameters: tied weights are counted once."""
    seen: set[int] = set()
    trainable = total = 0
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return trainable, total


def directory_size(path: str | Path) -> int:
    path = Path(path)
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def cost_summary(trainable: int, base_total: int) -> dict[str, float | int]:
    return {
        "trainable_params": trainable,
        "base_params": base_total,
        "trainable_percent": 100.0 * trainable / base_total if base_total else 0.0,
    }
