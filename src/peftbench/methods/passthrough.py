"""Any peft method by its PeftType: `method: {name: peft, peft_type: LOKR, r: 4, ...}`.

The named methods keep curated defaults; this entry reaches the rest of peft's catalogue
(LoHa, LoKr, FourierFT, VB-LoRA, MiSS, HRA, C3A, RandLoRA, SHiRA, ...) with each field
checked against that config class, so a typo fails at validation, not mid-run.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import ConfigDict, model_validator

from peftbench.methods.base import Method, MethodParams, PeftMethod, register_method
from peftbench.methods.targets import resolve_target_modules

# Fields peftbench sets itself, or that only make sense inside peft.
_RESERVED = {"task_type", "peft_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision",
             "inference_mode"}


def peft_config_classes() -> dict[str, type]:
    from peft import PeftType
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    return {t.value: PEFT_TYPE_TO_CONFIG_MAPPING[t] for t in PeftType if t in PEFT_TYPE_TO_CONFIG_MAPPING}


def config_fields(cls: type) -> list[str]:
    return sorted(f.name for f in dataclasses.fields(cls) if f.init and f.name not in _RESERVED)


class PassthroughParams(MethodParams):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    peft_type: str

    @model_validator(mode="after")
    def _known_type_and_fields(self) -> "PassthroughParams":
        classes = peft_config_classes()
        key = self.peft_type.upper()
        if key not in classes:
            raise ValueError(f"unknown peft_type {self.peft_type!r}; this peft has: {', '.join(sorted(classes))}")
        allowed = config_fields(classes[key])
        unknown = sorted(set(self.model_extra or {}) - set(allowed))
        if unknown:
            raise ValueError(
                f"{key} has no field(s) {', '.join(unknown)}; its fields are: {', '.join(allowed)}"
            )
        self.peft_type = key
        return self

    def peft_kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


@register_method
class PeftPassthrough(PeftMethod):
    name = "peft"
    family = "reparameterised"
    description = "any peft method by peft_type, its fields passed through (checked against peft's config)"
    Params = PassthroughParams
    mergeable = True  # decided per peft_type in merge()

    def label(self, params: PassthroughParams) -> str:
        return f"peft-{params.peft_type.lower()}"

    def peft_config(self, params: PassthroughParams, model, ctx):
        from peft import TaskType

        cls = peft_config_classes()[params.peft_type]
        kwargs = params.peft_kwargs()
        if isinstance(kwargs.get("target_modules"), list):
            kwargs["target_modules"] = resolve_target_modules(model, kwargs["target_modules"])
        return cls(task_type=TaskType.CAUSAL_LM, **kwargs)

    def packs(self, params: PassthroughParams) -> bool:
        from peft.config import PromptLearningConfig

        return not issubclass(peft_config_classes()[params.peft_type], PromptLearningConfig)

    def merge(self, model):
        if model.peft_config["default"].is_prompt_learning:
            return Method.merge(self, model)  # virtual tokens have no weights to fold into
        return model.merge_and_unload()
