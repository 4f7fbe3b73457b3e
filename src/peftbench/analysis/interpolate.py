"""Points on the path from the base model (alpha 0) to the tuned model (alpha 1).

Each method names its path (`Method.interpolation_path`):

- "weights" (additive updates: LoRA family, IA3, VeRA, full fine-tuning, ...): linear in
  weight space, W(a) = W0 + a (W1 - W0), on every tensor of the merged model.
- "rotation" (OFT, BOFT): the rotation's skew-symmetric generator is scaled,
  R(a) = Cayley(sqrt(a) Q), and the rotation merged; interpolating the dense delta would
  leave the orthogonal group. BOFT's magnitude vector moves linearly, 1 + a (s - 1).

Alphas above 1 extrapolate. Soft prompts have no merged weights: their path is not
defined (their initialisation is not kept), and merging them raises NotMergeableError.
A walker is built once per tuned model and then asked for any number of alphas.
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Protocol

import torch
from torch import nn

from peftbench.errors import PeftbenchError
from peftbench.registry import Registry


class Walker(Protocol):
    def __call__(self, alpha: float) -> nn.Module:
        """The merged model at `alpha` (may reuse one module between calls: use it before the next)."""


PathFactory = Callable[["object", nn.Module, Callable[[], nn.Module]], Walker]
PATHS: Registry[PathFactory] = Registry("interpolation path")

# parameter-name parts of peft's orthogonal adapters: the generator Q is scaled by
# sqrt(alpha); BOFT's per-output magnitude moves linearly from 1
GENERATOR_PARTS = (".oft_R.", ".boft_R.")
MAGNITUDE_PARTS = (".boft_s.",)


@PATHS.decorator("weights")
def along_weights(method, tuned: nn.Module, load_base: Callable[[], nn.Module]) -> Walker:
    merged = method.merge(tuned)  # NotMergeableError for soft prompts
    base = {k: v for k, v in load_base().state_dict().items() if v.is_floating_point()}
    tensors = {k: v for k, v in merged.state_dict().items() if k in base and v.is_floating_point()}
    delta = {k: v - base[k].to(v.dtype) for k, v in tensors.items()}

    def walk(alpha: float) -> nn.Module:
        with torch.no_grad():
            for name, tensor in tensors.items():
                tensor.copy_(base[name].to(tensor.dtype) + alpha * delta[name])
        return merged

    return walk


def _name_has(name: str, parts: tuple[str, ...]) -> bool:
    return any(part in f"{name}." for part in parts)


def scale_rotations(model: nn.Module, generator_scale: Callable[[str], float], magnitude_alpha: float = 1.0) -> None:
    """In place: multiply each orthogonal adapter's generator by `generator_scale(name)`
    and move BOFT magnitudes to 1 + magnitude_alpha (s - 1)."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if _name_has(name, GENERATOR_PARTS):
                param.mul_(generator_scale(name))
            elif _name_has(name, MAGNITUDE_PARTS):
                param.copy_(1 + magnitude_alpha * (param - 1))


def generator_names(model: nn.Module) -> list[str]:
    return [name for name, _ in model.named_parameters() if _name_has(name, GENERATOR_PARTS)]


@PATHS.decorator("rotation")
def along_rotation(method, tuned: nn.Module, load_base: Callable[[], nn.Module]) -> Walker:
    if not generator_names(tuned):
        raise PeftbenchError(f"method {method.name!r} has a rotation path but its model holds no OFT/BOFT generator")

    def walk(alpha: float) -> nn.Module:
        if alpha < 0:
            raise PeftbenchError(f"alpha {alpha}: the rotation path R(a) = Cayley(sqrt(a) Q) needs alpha >= 0")
        point = copy.deepcopy(tuned)  # merging unloads the adapter; keep the tuned one for the next alpha
        scale_rotations(point, lambda _: math.sqrt(alpha), magnitude_alpha=alpha)
        return method.merge(point)

    return walk


def walker(method, tuned: nn.Module, load_base: Callable[[], nn.Module]) -> Walker:
    """The path of `method` from base to `tuned` (an adapter model as the method attached it)."""
    return PATHS.get(method.interpolation_path)(method, tuned, load_base)


def parse_alphas(text: str) -> list[float]:
    """'0:1:0.1' (start:stop:step, stop included) or '0,0.5,1,1.2'."""
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0:
                raise ValueError("step must be positive")
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            return [round(start + i * step, 10) for i in range(count)]
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise PeftbenchError(f"--alphas {text!r}: expected start:stop:step (e.g. 0:1:0.1) or a comma list ({exc})") from None
