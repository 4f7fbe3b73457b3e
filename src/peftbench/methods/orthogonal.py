"""Orthogonal fine-tuning from peft: OFT and butterfly OFT (BOFT)."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import Field

from peftbench.methods.base import MethodParams, PeftMethod, register_method, resolved_targets


class OftParams(MethodParams):
    block_size: int = Field(16, gt=0, description="size of each orthogonal block (PEFT-Arena: 16; peft: 32)")
    target_modules: Union[list[str], Literal["all-linear"]] = ["q_proj", "v_proj"]
    coft: bool = Field(False, description="constrained OFT: keep the rotation within eps of identity")
    eps: float = Field(6e-5, gt=0)
    module_dropout: float = Field(0.0, ge=0, lt=1)


@register_method
class Oft(PeftMethod):
    name = "oft"
    family = "orthogonal"
    description = "OFT: a block-diagonal orthogonal rotation of each target weight (Qiu et al. 2023)"
    Params = OftParams
    mergeable = True
    interpolation_path = "rotation"

    def peft_config(self, params: OftParams, model, ctx):
        from peft import OFTConfig, TaskType

        return OFTConfig(
            task_type=TaskType.CAUSAL_LM, r=0, oft_block_size=params.block_size,
            target_modules=resolved_targets(params, model), coft=params.coft, eps=params.eps,
            module_dropout=params.module_dropout,
        )


class BoftParams(MethodParams):
    block_size: int = Field(4, gt=0, description="size of each butterfly block")
    butterfly_factor: int = Field(2, gt=0, description="number of butterfly factors (1 = plain block OFT)")
    target_modules: Union[list[str], Literal["all-linear"]] = ["q_proj", "v_proj"]
    dropout: float = Field(0.0, ge=0, lt=1)


@register_method
class Boft(PeftMethod):
    name = "boft"
    family = "orthogonal"
    description = "BOFT: orthogonal rotation as a product of butterfly factors (Liu et al. 2024)"
    Params = BoftParams
    mergeable = True
    interpolation_path = "rotation"

    def peft_config(self, params: BoftParams, model, ctx):
        from peft import BOFTConfig, TaskType

        return BOFTConfig(
            task_type=TaskType.CAUSAL_LM, boft_block_size=params.block_size,
            boft_n_butterfly_factor=params.butterfly_factor, target_modules=resolved_targets(params, model),
            boft_dropout=params.dropout,
        )
