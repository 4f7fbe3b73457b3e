"""What a PEFT method is to peftbench: typed hyper-parameters and how to attach, save, load.

A method knows nothing of tasks. Most methods are thin over peft (`PeftMethod`): they
only turn their typed hyper-parameters into a peft config.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict
from torch import nn

from peftbench.registry import Registry

Family = Literal["additive", "reparameterised", "selective", "soft-prompt", "orthogonal", "full", "hybrid"]


class MethodParams(BaseModel):
    """Base for each method's hyper-parameters: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Method(ABC):
    name: ClassVar[str]
    family: ClassVar[Family]
    description: ClassVar[str]
    Params: ClassVar[type[MethodParams]] = MethodParams

    def params(self, values: dict[str, Any]) -> MethodParams:
        return self.Params.model_validate(values)

    @abstractmethod
    def attach(self, model: nn.Module, params: MethodParams) -> nn.Module:
        """Return the model ready to train: only this method's parameters require grad."""

    @abstractmethod
    def save(self, model: nn.Module, path: Path) -> None:
        """Write what training changed (the adapter) into the folder `path`."""

    @abstractmethod
    def load(self, base_model: nn.Module, path: Path) -> nn.Module:
        """Rebuild the tuned model from a fresh base model and a folder written by `save`."""


class PeftMethod(Method):
    """A method that peft implements: subclasses only build the peft config."""

    @abstractmethod
    def peft_config(self, params: MethodParams) -> Any: ...

    def attach(self, model: nn.Module, params: MethodParams) -> nn.Module:
        from peft import get_peft_model

        return get_peft_model(model, self.peft_config(params))

    def save(self, model: nn.Module, path: Path) -> None:
        model.save_pretrained(str(path))

    def load(self, base_model: nn.Module, path: Path) -> nn.Module:
        from peft import PeftModel

        return PeftModel.from_pretrained(base_model, str(path))


METHODS: Registry[Method] = Registry("method")


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: register one instance of a method under its `name`."""
    METHODS.register(cls.name, cls())
    return cls
