"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2021): PEFT-Bench's bn-adapter.

A small down-project / non-linearity / up-project block added to a sublayer's output,
with the up-projection starting at zero so the untrained model equals the base. peft has
no bottleneck adapter, and AdapterHub's `adapters` still cannot be installed beside
transformers 5 (checked 2026-12-03: adapters 1.3.0, the newest release, requires
transformers ~=4.57.6), so it is written here. Placement: Pfeiffer after the feed-forward output only; Houlsby after
both the attention output and the feed-forward output.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from peftbench.methods.base import InjectedMethod, MethodParams, register_method
from peftbench.methods.surgery import find_modules, replace_module

_PLACEMENT = {"pfeiffer": ["down_proj"], "houlsby": ["o_proj", "down_proj"]}
_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


class AdapterParams(MethodParams):
    config: Literal["pfeiffer", "houlsby"] = "pfeiffer"
    reduction_factor: int = Field(16, gt=0, description="bottleneck width = hidden size / reduction_factor")
    activation: Literal["relu", "gelu", "silu"] = "relu"


class AdaptedOutput(nn.Module):
    """Wraps a sublayer's output projection: y = h + up(act(down(h))), h = sublayer(x)."""

    def __init__(self, sublayer: nn.Module, width: int, bottleneck: int, activation: str):
        super().__init__()
        self.sublayer = sublayer
        weight = next(sublayer.parameters())
        self.down = nn.Linear(width, bottleneck, device=weight.device, dtype=weight.dtype)
        self.act = _ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, width, device=weight.device, dtype=weight.dtype)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.sublayer(x)
        return h + self.up(self.act(self.down(h)))


@register_method
class BottleneckAdapter(InjectedMethod):
    name = "adapter"
    family = "additive"
    description = "bottleneck adapters (Houlsby / Pfeiffer), zero-initialised up-projection"
    Params = AdapterParams

    def inject(self, model, params: AdapterParams):
        width = model.get_input_embeddings().embedding_dim
        bottleneck = max(1, width // params.reduction_factor)
        for name, _ in find_modules(model, _PLACEMENT[params.config], kind=nn.Module):
            replace_module(model, name, lambda m: AdaptedOutput(m, width, bottleneck, params.activation))

    def reference_trainable_count(self, model):
        return sum(
            sum(p.numel() for p in (m.down.weight, m.down.bias, m.up.weight, m.up.bias))
            for m in model.modules() if isinstance(m, AdaptedOutput)
        )
