"""Finding and replacing sub-modules, for the methods written here rather than in peft."""

from __future__ import annotations

from typing import Callable, Union

from torch import nn

from peftbench.methods.targets import resolve_target_modules


def _output_layer_names(model: nn.Module) -> set[str]:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return {name for name, module in model.named_modules() if head is not None and module is head}


def find_modules(model: nn.Module, targets: Union[str, list[str]], kind: type = nn.Linear) -> list[tuple[str, nn.Module]]:
    """Modules of type `kind` named by `targets` (llama-style names or "all-linear"); never the LM head."""
    resolved = resolve_target_modules(model, targets)
    skip = _output_layer_names(model)
    found = []
    for name, module in model.named_modules():
        if not isinstance(module, kind) or name in skip:
            continue
        if resolved == "all-linear" or any(name == t or name.endswith("." + t) for t in resolved):
            found.append((name, module))
    if not found:
        raise ValueError(f"no {kind.__name__} layer matches target_modules={targets!r}")
    return found


def replace_module(model: nn.Module, name: str, factory: Callable[[nn.Module], nn.Module]) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, factory(getattr(parent, child)))
