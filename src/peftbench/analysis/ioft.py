"""iOFT: rescale a trained OFT/BOFT adapter's rotation generators layer by layer.

The rotation strength of an adapted module is the Frobenius norm of its skew-symmetric
generator Q. Deep layers often rotate much harder than shallow ones; flattening that
profile trades a little target gain for retention (PEFT-Arena). For every module kind
(q_proj, v_proj, ...) each layer's Q is rescaled to a target strength:

- safescale: the mean strength of the first five layers;
- minscale: the minimum strength over all layers;
- uniform: every generator multiplied by one factor (the rotation path's sqrt(alpha)).

The result is an ordinary adapter: it is written as a new run directory that `eval`,
`merge` and `analyze` accept like any other.
"""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Callable, Optional

import torch

from peftbench.analysis.interpolate import generator_names, scale_rotations
from peftbench.errors import PeftbenchError
from peftbench.io import atomic_write_dir, atomic_write_json
from peftbench.registry import Registry

SAFE_LAYERS = 5
_LAYER = re.compile(r"\.(\d+)\.")

Targets = Callable[[dict[int, float]], dict[int, float]]  # layer -> strength  =>  layer -> target strength
RESCALINGS: Registry[Targets] = Registry("iOFT rescaling")


@RESCALINGS.decorator("safescale")
def _safescale(strengths: dict[int, float]) -> dict[int, float]:
    first = [strengths[layer] for layer in sorted(strengths)[:SAFE_LAYERS]]
    return dict.fromkeys(strengths, sum(first) / len(first))


@RESCALINGS.decorator("minscale")
def _minscale(strengths: dict[int, float]) -> dict[int, float]:
    return dict.fromkeys(strengths, min(strengths.values()))


def _kind_and_layer(name: str) -> tuple[str, int]:
    """('model.layers.*.self_attn.q_proj.oft_R.default.weight', 3) from the layer-3 name."""
    match = _LAYER.search(name)
    if match is None:
        raise PeftbenchError(f"cannot tell the layer of OFT generator {name!r}")
    return name[: match.start()] + ".*." + name[match.end():], int(match.group(1))


def rotation_strengths(model) -> dict[str, dict[int, float]]:
    """Module kind -> {layer: ||Q||_F} for every OFT/BOFT generator of the model."""
    params = dict(model.named_parameters())
    strengths: dict[str, dict[int, float]] = defaultdict(dict)
    for name in generator_names(model):
        kind, layer = _kind_and_layer(name)
        strengths[kind][layer] = float(torch.linalg.vector_norm(params[name].detach().float()))
    return dict(strengths)


def rescale(model, mode: str, factor: Optional[float] = None) -> dict:
    """Rescale the generators of `model` in place; returns the strengths before and after."""
    before = rotation_strengths(model)
    if not before:
        raise PeftbenchError("iOFT rescales OFT/BOFT rotation generators; this model has none")
    if mode == "uniform":
        if factor is None or factor < 0:
            raise PeftbenchError("iOFT uniform scaling needs --factor >= 0")
        scale_by_name = lambda _: factor  # noqa: E731
    else:
        if factor is not None:
            raise PeftbenchError(f"--factor is for uniform scaling; {mode} sets each layer's strength itself")
        ratios = {}
        for kind, strengths in before.items():
            targets = RESCALINGS.get(mode)(strengths)
            ratios[kind] = {layer: (targets[layer] / s if s > 0 else 1.0) for layer, s in strengths.items()}

        def scale_by_name(name: str) -> float:
            kind, layer = _kind_and_layer(name)
            return ratios[kind][layer]

    scale_rotations(model, scale_by_name)
    return {"mode": mode, "factor": factor, "before": before, "after": rotation_strengths(model)}


def ioft_run(path: str | Path, out: str | Path, mode: str, factor: Optional[float] = None) -> Path:
    """A new run directory holding the run's adapter with its rotations rescaled."""
    from peftbench.methods import METHODS
    from peftbench.run import ADAPTER_DIR, load_run

    path, out = Path(path), Path(out)
    model, _, cfg = load_run(path)
    method = METHODS.get(cfg.method.name)
    if method.interpolation_path != "rotation":
        raise PeftbenchError(f"iOFT rescales orthogonal adapters (oft, boft); {path.name} is {cfg.method.name!r}")
    if mode not in ("uniform", *RESCALINGS.names()):
        raise PeftbenchError(f"unknown iOFT mode {mode!r}; known: uniform, {', '.join(RESCALINGS.names())}")
    record = rescale(model, mode, factor)

    def fill(tmp: Path) -> None:
        shutil.copy2(path / "config.yaml", tmp / "config.yaml")
        method.save(model, tmp / ADAPTER_DIR)
        atomic_write_json(tmp / "ioft.json", {"source_run": str(path), **record})

    return atomic_write_dir(out, fill)
