"""Soft-prompt methods from peft: prompt tuning, prefix tuning, P-tuning.

Their update lives in virtual tokens, not in the weights, so none of them can merge.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from peftbench.methods.base import MethodParams, PeftMethod, register_method


class PromptParams(MethodParams):
    num_virtual_tokens: int = Field(8, gt=0)
    init: Literal["random", "text"] = "random"
    init_text: str = Field("Answer the question correctly:", min_length=1, description="used when init=text")


@register_method
class PromptTuning(PeftMethod):
    name = "prompt"
    family = "soft-prompt"
    description = "Prompt tuning: trained virtual-token embeddings before the input (Lester et al. 2021)"
    Params = PromptParams

    def peft_config(self, params: PromptParams, model, ctx):
        from peft import PromptTuningConfig, PromptTuningInit, TaskType

        text = {}
        if params.init == "text":
            if ctx.model_source is None:
                raise ValueError("prompt tuning with init=text needs the model's tokenizer source")
            text = {"prompt_tuning_init_text": params.init_text, "tokenizer_name_or_path": ctx.model_source}
        return PromptTuningConfig(
            task_type=TaskType.CAUSAL_LM, num_virtual_tokens=params.num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit.TEXT if params.init == "text" else PromptTuningInit.RANDOM, **text,
        )


class PrefixParams(MethodParams):
    num_virtual_tokens: int = Field(10, gt=0)
    projection: bool = Field(False, description="reparameterise the prefix through a 2-layer MLP")
    encoder_hidden_size: int = Field(512, gt=0, description="MLP width when projection is on")


@register_method
class PrefixTuning(PeftMethod):
    name = "prefix"
    family = "soft-prompt"
    description = "Prefix tuning: trained key/value prefixes in every layer (Li & Liang 2021)"
    Params = PrefixParams

    def peft_config(self, params: PrefixParams, model, ctx):
        from peft import PrefixTuningConfig, TaskType

        return PrefixTuningConfig(
            task_type=TaskType.CAUSAL_LM, num_virtual_tokens=params.num_virtual_tokens,
            prefix_projection=params.projection, encoder_hidden_size=params.encoder_hidden_size,
        )


class PtuningParams(MethodParams):
    num_virtual_tokens: int = Field(8, gt=0)
    encoder: Literal["MLP", "LSTM"] = "MLP"
    encoder_hidden_size: int = Field(128, gt=0)
    encoder_num_layers: int = Field(2, gt=0)
    encoder_dropout: float = Field(0.0, ge=0, lt=1)


@register_method
class Ptuning(PeftMethod):
    name = "ptuning"
    family = "soft-prompt"
    description = "P-tuning: virtual tokens produced by a trained prompt encoder (Liu et al. 2021)"
    Params = PtuningParams

    def peft_config(self, params: PtuningParams, model, ctx):
        from peft import PromptEncoderConfig, TaskType

        return PromptEncoderConfig(
            task_type=TaskType.CAUSAL_LM, num_virtual_tokens=params.num_virtual_tokens,
            encoder_reparameterization_type=params.encoder, encoder_hidden_size=params.encoder_hidden_size,
            encoder_num_layers=params.encoder_num_layers, encoder_dropout=params.encoder_dropout,
        )
