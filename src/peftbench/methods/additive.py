"""Additive / rescaling methods from peft: IA3 and VeRA."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import Field

from peftbench.methods.base import MethodParams, PeftMethod, register_method, resolved_targets


class Ia3Params(MethodParams):
    # peft's llama default: keys, values and the feed-forward output
    target_modules: Union[list[str], Literal["all-linear"]] = ["k_proj", "v_proj", "down_proj"]
    feedforward_modules: list[str] = Field(["down_proj"], description="targets whose *input* is rescaled")


@register_method
class Ia3(PeftMethod):
    name = "ia3"
    family = "additive"
    description = "IA3: learned rescaling vectors on keys, values and FFN activations (Liu et al. 2022)"
    Params = Ia3Params
    mergeable = True

    def peft_config(self, params: Ia3Params, model, ctx):
        from peft import IA3Config, TaskType

        targets = resolved_targets(params, model)
        feedforward = resolved_targets(params, model, "feedforward_modules")
        return IA3Config(task_type=TaskType.CAUSAL_LM, target_modules=targets, feedforward_modules=feedforward)


class VeraParams(MethodParams):
    r: int = Field(256, gt=0, description="rank of the shared frozen random projections")
    target_modules: Union[list[str], Literal["all-linear"]] = ["q_proj", "v_proj"]
    dropout: float = Field(0.0, ge=0, lt=1)
    d_initial: float = Field(0.1, gt=0, description="initial value of the d scaling vector")
    projection_seed: int = Field(0, description="seed of the frozen random A and B")


@register_method
class Vera(PeftMethod):
    name = "vera"
    family = "additive"
    description = "VeRA: frozen shared random low-rank matrices, trained scaling vectors (Kopiczko et al. 2024)"
    Params = VeraParams
    mergeable = True

    def peft_config(self, params: VeraParams, model, ctx):
        from peft import TaskType, VeraConfig

        return VeraConfig(
            task_type=TaskType.CAUSAL_LM, r=params.r, target_modules=resolved_targets(params, model),
            vera_dropout=params.dropout, d_initial=params.d_initial, projection_prng_key=params.projection_seed,
            save_projection=True,  # the adapter reloads bit-exactly without regenerating A and B
        )
