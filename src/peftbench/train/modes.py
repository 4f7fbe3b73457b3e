"""Training modes a run can name (`train.mode`), behind one signature so the run does not
branch on them: supervised fine-tuning and GRPO."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from peftbench.registry import Registry
from peftbench.train.sft import TrainResult

Trainer = Callable[..., TrainResult]
TRAINING_MODES: Registry[Trainer] = Registry("training mode")


@TRAINING_MODES.decorator("sft")
def supervised(model, tokenizer, task, data: dict, cfg, log, show_progress: bool, optimizer, on_step,
               work_dir: Optional[Path] = None, on_checkpoint=None) -> TrainResult:
    from peftbench.train.sft import train_sft

    return train_sft(model, tokenizer, data["train"], cfg, log, show_progress, optimizer=optimizer, on_step=on_step,
                     validation=data.get("validation") if cfg.select_best else None, on_checkpoint=on_checkpoint)


@TRAINING_MODES.decorator("grpo")
def reinforcement(model, tokenizer, task, data: dict, cfg, log, show_progress: bool, optimizer, on_step,
                  work_dir: Optional[Path] = None, on_checkpoint=None) -> TrainResult:
    from peftbench.train.grpo import train_grpo
    from peftbench.train.sft import train_sft

    warmup = None
    if cfg.grpo.sft_warmup_steps:
        sft_cfg = cfg.model_copy(update={"mode": "sft", "max_steps": cfg.grpo.sft_warmup_steps})
        warmup = train_sft(model, tokenizer, data["train"], sft_cfg, log, show_progress, on_step=on_step,
                           on_checkpoint=on_checkpoint)
        if warmup.status != "completed":
            return warmup
    offset = cfg.grpo.sft_warmup_steps  # trajectory steps count from the start of the warm-up
    rl_cfg = cfg.model_copy(update={"max_steps": cfg.grpo.rl_steps or cfg.max_steps, "lr": cfg.grpo.lr or cfg.lr})
    if cfg.grpo.lr and optimizer is not None:  # the Trainer takes a given optimizer's rates as they are
        for group in optimizer.param_groups:
            group["lr"] *= cfg.grpo.lr / cfg.lr  # (groups at their own multiple, as LoRA+'s B, keep it)
            group.pop("initial_lr", None)
    result = train_grpo(model, tokenizer, task, data["train"], rl_cfg, log, show_progress, optimizer=optimizer,
                        on_step=on_step, output_dir=str(work_dir or "grpo"),
                        on_checkpoint=(lambda step: on_checkpoint(offset + step)) if on_checkpoint else None)
    return result.after(warmup) if warmup else result
