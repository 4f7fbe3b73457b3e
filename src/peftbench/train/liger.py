"""Liger's Triton kernels (fused RMSNorm and SwiGLU/GeGLU MLPs) for the training loop, on CUDA.

Liger swaps kernels in two ways: on the model instance (each norm's and MLP's forward) and
in the model's `modeling_*` module (the classes and the RoPE function every later model of
that type uses). peftbench keeps only the first, and only while training: the module-wide
swaps are undone at once (they would reach every model the process loads afterwards, the
base model of a retention score included), and the instance's on leaving the loop, so
evaluation runs the plain model as every other run does. Two kernels are left out on
purpose: RoPE (module-wide only) and the fused linear cross-entropy, which replaces the
loss peftbench computes at the answer positions only.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from contextlib import contextmanager

from torch import nn

from peftbench.errors import PeftbenchError

INSTALL_HINT = "pip install liger-kernel"


def liger_installed() -> bool:
    return importlib.util.find_spec("liger_kernel") is not None


def require_liger(device_type: str) -> None:
    """Refuse train.liger where its kernels cannot run, naming the fix."""
    if device_type != "cuda":
        raise PeftbenchError(f"train.liger needs a CUDA device (Liger's kernels are Triton GPU kernels); the model "
                             f"is on {device_type}: set train.liger: false")
    if not liger_installed():
        raise PeftbenchError(f"train.liger needs the liger-kernel package: {INSTALL_HINT}")


def _apply_function(model_type: str):
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN

    if model_type not in MODEL_TYPE_TO_APPLY_LIGER_FN:
        raise PeftbenchError(f"train.liger: Liger has no kernels for model type {model_type!r} (it has: "
                             f"{', '.join(sorted(MODEL_TYPE_TO_APPLY_LIGER_FN))}); set train.liger: false")
    return MODEL_TYPE_TO_APPLY_LIGER_FN[model_type]


_ADDED = object()  # marks a name that was not there before


def _attribute_changes(before: dict, after: dict) -> dict:
    """{name: value before, or _ADDED} for what changed."""
    return {name: before.get(name, _ADDED) for name, value in after.items() if before.get(name, _ADDED) is not value}


def _undo(namespace: dict, changes: dict) -> None:
    for name, old in changes.items():
        if old is _ADDED:
            namespace.pop(name, None)
        else:
            namespace[name] = old


@contextmanager
def liger_kernels(inner: nn.Module):
    """Liger's kernels on the transformer `inner` (the model under any adapter wrapper) while
    the block runs; the model is as it was afterwards."""
    require_liger(next(inner.parameters()).device.type)
    apply = _apply_function(inner.config.model_type)
    modeling = vars(sys.modules[type(inner).__module__])
    modules = list(inner.modules())
    module_globals, instances = dict(modeling), [dict(vars(m)) for m in modules]
    # the instance path (model=...) patches the existing norms and MLPs; the keyword filter is
    # Liger's own (each model type's function takes a different set)
    kwargs = {"rope": False, "cross_entropy": False, "fused_linear_cross_entropy": False}
    accepted = inspect.signature(apply).parameters
    apply(model=inner, **{k: v for k, v in kwargs.items() if k in accepted})
    _undo(modeling, _attribute_changes(module_globals, dict(modeling)))
    patched = [(vars(m), _attribute_changes(before, dict(vars(m)))) for m, before in zip(modules, instances)]
    try:
        yield
    finally:
        for namespace, changes in patched:
            _undo(namespace, changes)
