"""Points on the path from the base model (alpha 0) to the tuned model (alpha 1).

For methods whose update is folded into the weights, the path is linear in weight
space: W(a) = W0 + a (W1 - W0), on every tensor of the merged model (alphas above 1
extrapolate). Rotation methods (OFT, BOFT) need the path through their rotation,
R(a) = Cayley(sqrt(a) Q), not the dense delta: that path is not implemented yet and is
refused by name rather than approximated. Soft prompts have no merged weights at all.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from peftbench.errors import PeftbenchError
from peftbench.registry import Registry

Path = Callable[[nn.Module, nn.Module, float], nn.Module]
PATHS: Registry[Path] = Registry("interpolation path")


@PATHS.decorator("weights")
def along_weights(base: nn.Module, merged: nn.Module, alpha: float) -> nn.Module:
    """Move `merged` (in place) to W0 + alpha (W1 - W0); `base` holds W0 with the same names."""
    base_state = base.state_dict()
    with torch.no_grad():
        for name, tensor in merged.state_dict().items():
            if name not in base_state or not tensor.is_floating_point():
                continue
            start = base_state[name].to(tensor.dtype)
            tensor.copy_(start + alpha * (tensor - start))
    return merged


def interpolate(path_kind: str, base: nn.Module, merged: nn.Module, alpha: float) -> nn.Module:
    if path_kind not in PATHS:
        raise PeftbenchError(f"the {path_kind!r} interpolation path (OFT/BOFT: scaling the rotation's generator) "
                             "is not implemented yet; merge with alpha 1, or interpolate an additive method")
    return PATHS.get(path_kind)(base, merged, alpha)
