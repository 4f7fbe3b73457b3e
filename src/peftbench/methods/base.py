"""What a PEFT method is to peftbench: typed hyper-parameters and how to attach, save, load, merge.

A method knows nothing of tasks. Three kinds of implementation share this interface:
- `PeftMethod`: peft implements it; the method only builds the peft config;
- `InjectedMethod`: peft lacks it; the method edits the model in place and its adapter
  is the set of trainable tensors (saved as safetensors beside a `method.json`);
- anything else (the LoRA + soft-prompt hybrid) implements the interface directly.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from peftbench.errors import PeftbenchError
from peftbench.registry import Registry

Family = Literal["additive", "reparameterised", "selective", "soft-prompt", "orthogonal", "full", "hybrid"]

METHOD_FILE = "method.json"
WEIGHTS_FILE = "adapter_model.safetensors"


class NotMergeableError(PeftbenchError):
    """The method's update cannot be folded into the base weights."""


class MethodUnavailableError(PeftbenchError):
    """The method cannot run in this environment (e.g. needs CUDA)."""


class MethodParams(BaseModel):
    """Base for each method's hyper-parameters: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


@dataclass(frozen=True)
class MethodContext:
    """What a method may need to know about the run when it attaches."""

    total_steps: int = 1  # AdaLoRA schedules its rank budget over the whole run
    model_source: Optional[str] = None  # local folder or hub id (prompt-tuning text init loads its tokenizer)


class Method(ABC):
    name: ClassVar[str]
    family: ClassVar[Family]
    description: ClassVar[str]
    Params: ClassVar[type[MethodParams]] = MethodParams
    mergeable: ClassVar[bool] = False
    # how `merge --alpha` walks from base (0) to tuned (1): "weights" = W0 + a (W1 - W0) of the
    # merged weights; "rotation" = scale the rotation's generator (OFT/BOFT, not dense deltas)
    interpolation_path: ClassVar[str] = "weights"

    def params(self, values: dict[str, Any] | MethodParams) -> MethodParams:
        return values if isinstance(values, self.Params) else self.Params.model_validate(values)

    def label(self, params: MethodParams) -> str:
        """How runs of this method are named in run ids and tables."""
        return self.name

    def packs(self, params: MethodParams) -> bool:
        """Whether packed batches suit it: each example's tokens must stand alone in a row, which
        methods that prepend virtual tokens to every row (soft prompts) break."""
        return self.family not in ("soft-prompt", "hybrid")

    def serves_as_lora(self, params: MethodParams) -> bool:
        """Whether the folder `save` writes is a plain peft LoRA adapter over the untouched
        base, which vLLM can apply itself (`eval.backend: vllm`)."""
        return False

    def check_environment(self, params: MethodParams) -> None:
        """Raise MethodUnavailableError before anything loads if this machine cannot run it."""

    def load_kwargs(self, params: MethodParams) -> dict[str, Any]:
        """Extra `from_pretrained` arguments the base model needs (e.g. 4-bit quantisation)."""
        return {}

    @abstractmethod
    def attach(self, model: nn.Module, params: MethodParams, ctx: MethodContext = MethodContext()) -> nn.Module:
        """Return the model ready to train: only this method's parameters require grad."""

    @abstractmethod
    def save(self, model: nn.Module, path: Path) -> None:
        """Write what training changed (the adapter) into the folder `path`."""

    @abstractmethod
    def load(self, base_model: nn.Module, path: Path) -> nn.Module:
        """Rebuild the tuned model from a fresh base model and a folder written by `save`."""

    def merge(self, model: nn.Module) -> nn.Module:
        """A plain transformers model with the update folded into its weights."""
        raise NotMergeableError(f"method {self.name!r} cannot be merged into the base weights")

    def build_optimizer(self, model: nn.Module, params: MethodParams, lr: float, weight_decay: float):
        """A method-specific optimiser (LoRA+), or None for the standard AdamW."""
        return None

    def on_step(self, model: nn.Module, step: int) -> None:
        """Called after each optimiser step, before gradients are cleared (AdaLoRA)."""

    def reference_trainable_count(self, model: nn.Module) -> Optional[int]:
        """The trainable-parameter count by the implementing library's own accounting."""
        return None


def resolved_targets(params: MethodParams, model: nn.Module, field: str = "target_modules"):
    from peftbench.methods.targets import resolve_target_modules

    return resolve_target_modules(model, getattr(params, field))


class PeftMethod(Method):
    """A method that peft implements: subclasses only build the peft config."""

    @abstractmethod
    def peft_config(self, params: MethodParams, model: nn.Module, ctx: MethodContext) -> Any: ...

    def attach(self, model: nn.Module, params: MethodParams, ctx: MethodContext = MethodContext()) -> nn.Module:
        from peft import get_peft_model

        return get_peft_model(model, self.peft_config(params, model, ctx))

    def save(self, model: nn.Module, path: Path) -> None:
        model.save_pretrained(str(path))

    def load(self, base_model: nn.Module, path: Path) -> nn.Module:
        from peft import PeftModel

        return PeftModel.from_pretrained(base_model, str(path))

    def merge(self, model: nn.Module) -> nn.Module:
        if not self.mergeable:
            return super().merge(model)
        return model.merge_and_unload()

    def reference_trainable_count(self, model: nn.Module) -> Optional[int]:
        return model.get_nb_trainable_parameters()[0]


class InjectedMethod(Method):
    """A method peft lacks, written here: it edits the model in place.

    The saved adapter is exactly the tensors that train (plus `method.json` with the
    hyper-parameters), so reload = inject the same structure into a fresh base, then
    load those tensors.
    """

    @abstractmethod
    def inject(self, model: nn.Module, params: MethodParams) -> None:
        """Add or unfreeze this method's parameters; everything else is already frozen."""

    def attach(self, model: nn.Module, params: MethodParams, ctx: MethodContext = MethodContext()) -> nn.Module:
        model.requires_grad_(False)
        self.inject(model, params)
        model._peftbench_params = params  # read back by save()
        return model

    def save(self, model: nn.Module, path: Path) -> None:
        from safetensors.torch import save_file

        path.mkdir(parents=True, exist_ok=True)
        params: MethodParams = model._peftbench_params
        (path / METHOD_FILE).write_text(json.dumps({"method": self.name, "params": params.model_dump()}, indent=2))
        # named_parameters() yields tied weights once; contiguous copies keep safetensors happy
        tensors = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
        save_file(tensors, str(path / WEIGHTS_FILE))

    def load(self, base_model: nn.Module, path: Path) -> nn.Module:
        from safetensors.torch import load_file

        saved = json.loads((path / METHOD_FILE).read_text())
        if saved["method"] != self.name:
            raise ValueError(f"{path} holds a {saved['method']!r} adapter, not {self.name!r}")
        model = self.attach(base_model, self.params(saved["params"]))
        device = next(model.parameters()).device
        state = {k: v.to(device) for k, v in load_file(str(path / WEIGHTS_FILE)).items()}
        missing = set(state) - {n for n, _ in model.named_parameters()}
        if missing:
            raise ValueError(f"{path}: saved tensors not in the model: {sorted(missing)[:5]}")
        with torch.no_grad():
            named = dict(model.named_parameters())
            for name, tensor in state.items():
                named[name].copy_(tensor)
        return model


METHODS: Registry[Method] = Registry("method")


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: register one instance of a method under its `name`."""
    METHODS.register(cls.name, cls())
    return cls
