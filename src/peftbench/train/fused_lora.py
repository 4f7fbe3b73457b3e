"""LoRA's forward and backward in one autograd node per layer, for training on CPU.

peft computes `base(x) + lora_B(lora_A(dropout(x))) * scaling` as separate ops: the scaling
multiplies the full (tokens, out) output, the sum is a further pass over it, and autograd
mirrors both in the backward (another full multiply, another full sum for the input's
gradient). On a CPU the big matrix products already run at the core's peak, so those
memory-bound passes over full-width activations are a tenth of a SmolLM2-135M LoRA step
(benchmarks/README.md). Here the scaling moves onto the small B matrix (out x r), and the
low-rank product is accumulated into the base product's output in place (`addmm_`), in the
forward and in the input's gradient alike. The numbers are the same sums; only where the
scaling is applied and the order of additions differ (tested to float32 rounding).

Only plain LoRA layers take it: one active adapter, no dropout, no DoRA or other variant,
not merged, over an `nn.Linear` whose weight is frozen; any other layer, or a call with
peft's extra arguments, runs peft's own forward.
"""

from __future__ import annotations

import types
from contextlib import contextmanager
from typing import Optional

import torch
from torch import nn


class _LoraLinear(torch.autograd.Function):
    """y = x W^T + b + (x A^T)(s B)^T; the backward of the same, with W and b frozen."""

    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scaling: float, compute_dtype):
        flat = x.reshape(-1, x.shape[-1]).to(compute_dtype)
        weight, lora_a = weight.to(compute_dtype), lora_a.to(compute_dtype)
        b_scaled = (lora_b * scaling).to(compute_dtype)
        low = flat @ lora_a.t()  # (tokens, r)
        out = torch.addmm(bias.to(compute_dtype), flat, weight.t()) if bias is not None else flat @ weight.t()
        out.addmm_(low, b_scaled.t())
        ctx.save_for_backward(flat, low, weight, lora_a, b_scaled)
        ctx.scaling, ctx.x_shape, ctx.x_dtype = scaling, x.shape, x.dtype
        return out.view(*x.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad_out):
        flat, low, weight, lora_a, b_scaled = ctx.saved_tensors
        grad = grad_out.reshape(-1, grad_out.shape[-1]).to(flat.dtype)
        grad_low = grad @ b_scaled  # (tokens, r): s * grad B
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = grad @ weight
            grad_x.addmm_(grad_low, lora_a)
            grad_x = grad_x.view(ctx.x_shape).to(ctx.x_dtype)
        grad_a = grad_low.t() @ flat  # (r, in)
        grad_b = (grad.t() @ low).mul_(ctx.scaling)  # (out, r)
        return grad_x, None, None, grad_a, grad_b, None, None


def _fusable(layer) -> bool:
    from peft.tuners.lora.layer import Linear as LoraLinear

    if type(layer) is not LoraLinear or layer.merged or layer.disable_adapters or len(layer.active_adapters) != 1:
        return False
    name = layer.active_adapters[0]
    base = layer.base_layer
    return (name in layer.lora_A and name not in layer.lora_variant and not layer.fan_in_fan_out
            and isinstance(layer.lora_dropout[name], nn.Identity) and getattr(layer.lora_B[name], "bias", None) is None
            and type(base) is nn.Linear and not base.weight.requires_grad
            and (base.bias is None or not base.bias.requires_grad))


def _fused_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    name = self.active_adapters[0]
    device = x.device.type
    dtype: Optional[torch.dtype] = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
    if args or kwargs or (dtype is None and self.base_layer.weight.dtype != self.lora_A[name].weight.dtype):
        # peft's mixed-batch adapter names; a base kept in another dtype than its adapter
        # (peft runs each part in its own): peft's path
        return self._peft_forward(x, *args, **kwargs)
    with torch.autocast(device, enabled=False):  # the dtype is chosen here, as autocast would have
        return _LoraLinear.apply(x, self.base_layer.weight, self.base_layer.bias, self.lora_A[name].weight,
                                 self.lora_B[name].weight, float(self.scaling[name]),
                                 dtype or self.lora_A[name].weight.dtype)


@contextmanager
def fused_lora(model: nn.Module, active: bool = True):
    """Plain LoRA layers run the fused forward and backward while the block runs."""
    layers = [m for m in model.modules() if _fusable(m)] if active else []
    for layer in layers:
        layer._peft_forward = layer.forward
        layer.forward = types.MethodType(_fused_forward, layer)  # this instance only
    try:
        yield len(layers)
    finally:
        for layer in layers:
            del layer.forward, layer._peft_forward  # the class's forward again
