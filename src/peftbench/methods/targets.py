"""Target-module names that work across architectures.

Configs name modules the llama way (q_proj, v_proj, down_proj, ...). Other families
call the same layers differently (GPT-2 fuses q/k/v into `c_attn`), so the same YAML
is translated per model here instead of every config carrying per-model lists.
"""

from __future__ import annotations

from typing import Optional, Union

from torch import nn

from peftbench.errors import PeftbenchError

# model_type -> llama-style name -> that family's module name (suffix-matched by peft)
ALIASES: dict[str, dict[str, str]] = {
    "gpt2": {
        "q_proj": "c_attn", "k_proj": "c_attn", "v_proj": "c_attn", "o_proj": "attn.c_proj",
        "gate_proj": "mlp.c_fc", "up_proj": "mlp.c_fc", "down_proj": "mlp.c_proj",
    },
    "opt": {"o_proj": "out_proj", "up_proj": "fc1", "down_proj": "fc2"},
    "gpt_neox": {"q_proj": "query_key_value", "k_proj": "query_key_value", "v_proj": "query_key_value",
                 "o_proj": "attention.dense", "up_proj": "dense_h_to_4h", "down_proj": "dense_4h_to_h"},
}


def _matches(module_names: list[str], target: str) -> bool:
    return any(name == target or name.endswith("." + target) for name in module_names)


def resolve_target_modules(model: nn.Module, targets: Union[None, str, list[str]]) -> Union[None, str, list[str]]:
    """Translate llama-style names for this model; `None` and strings ("all-linear") pass through."""
    if targets is None or isinstance(targets, str):
        return targets
    names = [name for name, _ in model.named_modules()]
    model_type: Optional[str] = getattr(getattr(model, "config", None), "model_type", None)
    aliases = ALIASES.get(model_type or "", {})
    resolved: list[str] = []
    for target in targets:
        if _matches(names, target):
            choice = target
        elif target in aliases and _matches(names, aliases[target]):
            choice = aliases[target]
        else:
            leaves = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
            raise PeftbenchError(
                f"target module {target!r} matches no layer of this {model_type or 'model'}; "
                f"its linear layers are: {', '.join(leaves)} (or use 'all-linear')"
            )
        if choice not in resolved:
            resolved.append(choice)
    return resolved
