"""The LoRA family: LoRA, DoRA, PiSSA, rsLoRA, LoRA+, AdaLoRA and QLoRA, all from peft.

They share one hyper-parameter set; each variant changes one switch of peft's LoraConfig
(or, for LoRA+, only the optimiser; for QLoRA, only how the base model is loaded).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional, Union

from pydantic import Field
from torch import nn

from peftbench.methods.base import (
    MethodContext, MethodParams, MethodUnavailableError, PeftMethod, register_method, resolved_targets,
)


class LoraParams(MethodParams):
    r: int = Field(8, gt=0, description="rank of the update")
    alpha: float = Field(16, gt=0, description="scale: the update is multiplied by alpha / r")
    dropout: float = Field(0.0, ge=0, lt=1)
    # q/v is the seed studies' setting; "all-linear" adapts every linear layer but the head.
    target_modules: Union[list[str], Literal["all-linear"]] = ["q_proj", "v_proj"]
    bias: Literal["none", "all", "lora_only"] = "none"


class _LoraBase(PeftMethod):
    family = "reparameterised"
    Params = LoraParams
    mergeable = True
    # saved as a plain LoRA adapter over the original base (PiSSA converts on saving);
    # DoRA's magnitudes and AdaLoRA's SVD form are not, nor is an adapter on a 4-bit base
    plain_adapter: ClassVar[bool] = False

    def serves_as_lora(self, params: LoraParams) -> bool:
        return self.plain_adapter and params.bias == "none"  # vLLM applies no adapter biases

    def lora_kwargs(self, params: Any, ctx: MethodContext) -> dict[str, Any]:
        """The variant's own LoraConfig switches."""
        return {}

    def peft_config(self, params: LoraParams, model: nn.Module, ctx: MethodContext):
        from peft import LoraConfig, TaskType

        return LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=params.r,
            lora_alpha=params.alpha,
            lora_dropout=params.dropout,
            target_modules=resolved_targets(params, model),
            bias=params.bias,
            **self.lora_kwargs(params, ctx),
        )


@register_method
class Lora(_LoraBase):
    name = "lora"
    plain_adapter = True
    description = "LoRA: low-rank update B@A on the target linear layers (Hu et al. 2021)"


@register_method
class Dora(_LoraBase):
    name = "dora"
    description = "DoRA: LoRA on the direction, a trained magnitude per output (Liu et al. 2024)"

    def lora_kwargs(self, params, ctx):
        return {"use_dora": True}


@register_method
class RsLora(_LoraBase):
    name = "rslora"
    plain_adapter = True
    description = "rsLoRA: LoRA scaled by alpha/sqrt(r), stable across ranks (Kalajdzievski 2023)"

    def lora_kwargs(self, params, ctx):
        return {"use_rslora": True}


# the start of the warning peft raises when its PiSSA-to-LoRA conversion loads the initial adapter
PISSA_CONVERSION_WARNING = "PiSSA changes the base weights of the model"


@register_method
class Pissa(_LoraBase):
    name = "pissa"
    plain_adapter = True
    description = "PiSSA: LoRA initialised on the principal singular vectors (Meng et al. 2024)"
    _INITIAL = "_pissa_initial_adapter"

    def lora_kwargs(self, params, ctx):
        return {"init_lora_weights": "pissa"}

    def attach(self, model, params, ctx=MethodContext()):
        model = super().attach(model, params, ctx)
        # PiSSA rewrites the base weights to W - BA. To save an adapter that loads on the
        # *original* base, peft converts it against the initial adapter, kept here.
        initial = Path(tempfile.mkdtemp(prefix="peftbench-pissa-init-"))
        model.peft_config["default"].init_lora_weights = True
        model.save_pretrained(str(initial))
        model.peft_config["default"].init_lora_weights = "pissa"
        setattr(model, self._INITIAL, initial)
        return model

    def save(self, model, path):
        initial = getattr(model, self._INITIAL, None)
        if initial is None:  # a reloaded (already converted) adapter is a plain LoRA
            return super().save(model, path)
        # peft converts by loading the initial adapter beside the trained one, and then warns
        # that PiSSA "should not be used with other adapters" and recommends this very
        # conversion: the warning is about a misuse that is not happening
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=PISSA_CONVERSION_WARNING)
            model.save_pretrained(str(path), path_initial_model_for_weight_conversion=str(initial))


@register_method
class LoraPlus(_LoraBase):
    name = "loraplus"
    plain_adapter = True
    description = "LoRA+: LoRA with a larger learning rate for B than for A (Hayou et al. 2024)"

    class Params(LoraParams):
        lr_ratio: float = Field(16.0, gt=0, description="lr of B / lr of A")

    def build_optimizer(self, model, params, lr, weight_decay):
        import torch
        from peft.optimizers import create_loraplus_optimizer

        return create_loraplus_optimizer(
            model=model, optimizer_cls=torch.optim.AdamW, lr=lr, loraplus_lr_ratio=params.lr_ratio,
            weight_decay=weight_decay,
        )


# peft's warning for lora_A/lora_B tensors with a zero dimension (a regex, matched at the start)
UNGATHERED_SHARDS_WARNING = r"Adapter '[^']*': \d+ LoRA tensor\(s\) have invalid shape"


class AdaLoraParams(LoraParams):
    r: int = Field(8, gt=0, description="average target rank after pruning")
    init_r: int = Field(12, gt=0, description="starting rank of every module")
    tinit: Optional[int] = Field(None, ge=0, description="warm-up steps before pruning (default: 10% of steps)")
    tfinal: Optional[int] = Field(None, ge=0, description="final fine-tuning steps (default: 20% of steps)")
    delta_t: int = Field(1, gt=0, description="steps between rank reallocations")


@register_method
class AdaLora(_LoraBase):
    name = "adalora"
    description = "AdaLoRA: SVD-shaped LoRA whose rank budget is reallocated while training (Zhang et al. 2023)"
    Params = AdaLoraParams

    def peft_config(self, params: AdaLoraParams, model, ctx):
        from peft import AdaLoraConfig, TaskType

        total = max(ctx.total_steps, 3)
        tinit = params.tinit if params.tinit is not None else total // 10
        tfinal = params.tfinal if params.tfinal is not None else total // 5
        if tinit + tfinal >= total:  # peft requires a pruning phase of at least one step
            tinit, tfinal = 0, 0
        return AdaLoraConfig(
            task_type=TaskType.CAUSAL_LM, target_r=params.r, init_r=params.init_r, lora_alpha=params.alpha,
            lora_dropout=params.dropout, target_modules=resolved_targets(params, model),
            total_step=total, tinit=tinit, tfinal=tfinal, deltaT=params.delta_t,
        )

    def on_step(self, model, step):
        model.base_model.update_and_allocate(step)

    def save(self, model, path):
        # AdaLoRA saves each module at its final rank, so a module pruned to rank 0 writes
        # zero-sized lora_A/lora_B, which peft's save check takes for ZeRO-3/FSDP shards that
        # were not gathered. Outside a distributed run there are no shards to gather.
        import torch.distributed as dist

        with warnings.catch_warnings():
            if not (dist.is_available() and dist.is_initialized()):
                warnings.filterwarnings("ignore", message=UNGATHERED_SHARDS_WARNING)
            super().save(model, path)


class QLoraParams(LoraParams):
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"


@register_method
class QLora(_LoraBase):
    name = "qlora"
    description = "QLoRA: LoRA on a 4-bit quantised base (bitsandbytes; CUDA only) (Dettmers et al. 2023)"
    Params = QLoraParams
    mergeable = False  # folding into 4-bit weights would re-quantise them; merge a bf16 copy instead

    def check_environment(self, params):
        import torch

        if not torch.cuda.is_available():
            raise MethodUnavailableError(
                "method 'qlora' needs a CUDA GPU (bitsandbytes 4-bit kernels); none is visible here. "
                "Use 'lora' on CPU, or run this config on a GPU machine."
            )
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise MethodUnavailableError("method 'qlora' needs bitsandbytes: pip install bitsandbytes") from None

    def load_kwargs(self, params: QLoraParams):
        import torch
        from transformers import BitsAndBytesConfig

        return {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type=params.quant_type,
                bnb_4bit_use_double_quant=params.double_quant,
                bnb_4bit_compute_dtype=getattr(torch, params.compute_dtype),
            )
        }

    def attach(self, model, params, ctx=MethodContext()):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        return super().attach(model, params, ctx)
