"""BitFit: train only bias terms (Ben Zaken et al. 2022).

Llama-style models have no biases, so, as PEFT-Bench does, trainable biases are added to
the target linear layers. Unlike PEFT-Bench (random start), they start at zero so the
untrained model computes exactly what the base model does. Biases the model already has
(GPT-2, OPT) are trained as they are. peft has no BitFit, hence this file.
"""

from __future__ import annotations

from typing import Literal, Union

import torch
from torch import nn

from peftbench.methods.base import InjectedMethod, MethodParams, register_method
from peftbench.methods.surgery import find_modules


class BitfitParams(MethodParams):
    target_modules: Union[list[str], Literal["all-linear"]] = "all-linear"


@register_method
class Bitfit(InjectedMethod):
    name = "bitfit"
    family = "selective"
    description = "BitFit: only biases train; zero-initialised biases are added where layers have none"
    Params = BitfitParams

    def inject(self, model: nn.Module, params: BitfitParams) -> None:
        for _, linear in find_modules(model, params.target_modules):
            if linear.bias is None:
                weight = linear.weight
                linear.bias = nn.Parameter(torch.zeros(linear.out_features, dtype=weight.dtype, device=weight.device))
            linear.bias.requires_grad_(True)
        for name, param in model.named_parameters():
            if name.endswith(".bias"):  # existing biases elsewhere (norms, conv1d)
                param.requires_grad_(True)

    def reference_trainable_count(self, model):
        return sum(p.numel() for n, p in model.named_parameters() if n.endswith(".bias"))
