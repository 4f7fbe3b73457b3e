"""LoRA: a trainable low-rank update B @ A beside frozen linear weights (Hu et al., 2021)."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import Field

from peftbench.methods.base import MethodParams, PeftMethod, register_method


class LoraParams(MethodParams):
    r: int = Field(8, gt=0, description="rank of the update")
    alpha: float = Field(16, gt=0, description="scale: the update is multiplied by alpha / r")
    dropout: float = Field(0.0, ge=0, lt=1)
    # q/v is the seed studies' setting; "all-linear" adapts every linear layer but the head.
    target_modules: Union[list[str], Literal["all-linear"]] = ["q_proj", "v_proj"]
    bias: Literal["none", "all", "lora_only"] = "none"


@register_method
class Lora(PeftMethod):
    name = "lora"
    family = "reparameterised"
    description = "LoRA: low-rank update B@A on the target linear layers"
    Params = LoraParams

    def peft_config(self, params: LoraParams):
        from peft import LoraConfig, TaskType

        return LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=params.r,
            lora_alpha=params.alpha,
            lora_dropout=params.dropout,
            target_modules=params.target_modules,
            bias=params.bias,
        )
