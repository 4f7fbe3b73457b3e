"""LayerNorm tuning from peft: only the normalisation layers' scales (and biases) train."""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from peftbench.methods.base import MethodParams, PeftMethod, register_method


class LnTuningParams(MethodParams):
    target_modules: Optional[list[str]] = Field(None, description="norm layers; default: peft's per-architecture list")


@register_method
class LnTuning(PeftMethod):
    name = "lntuning"
    family = "selective"
    description = "LN tuning: train only the LayerNorm/RMSNorm parameters (Zhao et al. 2024)"
    Params = LnTuningParams
    mergeable = True

    def peft_config(self, params: LnTuningParams, model, ctx):
        from peft import LNTuningConfig, TaskType

        return LNTuningConfig(task_type=TaskType.CAUSAL_LM, target_modules=params.target_modules)
