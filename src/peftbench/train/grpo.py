"""RL with verifiable rewards: GRPO through TRL's GRPOTrainer, any method, the task's own grader.

The reward of a completion is the task's grade of it: its primary metric on the
extracted answer for generation tasks (math-verify or exact match for math, unit tests
in the sandbox for code), and the generated label against the gold one for
classification tasks (1 if it matches after normalisation, else 0). The KL term's
reference is the base model: for PEFT adapters TRL disables the adapter; for methods
that change the model itself (full fine-tuning, BitFit, ...) TRL loads a frozen copy of
the base from the model's folder.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Optional, Sequence

from torch import nn

from peftbench.config import TrainConfig
from peftbench.metrics import get_metric
from peftbench.models.compat import checkpointing_argument, peft_generation_sees_the_cache
from peftbench.models.loading import transformer_of
from peftbench.progress import progress_bar
from peftbench.prompting import render_prompt
from peftbench.tasks.base import Example, Task
from peftbench.train.sft import TrainResult, is_checkpoint, total_optimizer_steps


def reward_function(task: Task) -> Callable[..., list[float]]:
    """TRL reward function: one grade in [0, 1] per completion, from the task's grader."""
    metric = get_metric("exact_match" if task.scoring == "loglik" else task.primary_metric)

    def reward(prompts, completions, reference, **_) -> list[float]:
        return [float(metric([task.extract(text)], [ref])) for text, ref in zip(completions, reference)]

    reward.__name__ = f"{task.name}_reward"  # TRL logs rewards under the function's name
    return reward


def _prompt(tokenizer, example: Example):
    """Plain text for tokenizers without a chat template (TRL adds the BOS token as our
    evaluation does); a user message otherwise, which TRL renders with the template."""
    if getattr(tokenizer, "chat_template", None):
        return [{"role": "user", "content": example.prompt}]
    return render_prompt(tokenizer, example.prompt)


def _dataset(tokenizer, examples: Sequence[Example]):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": _prompt(tokenizer, e), "reference": e.grading_reference} for e in examples])


def _trainer_callback(result: TrainResult, log, advance, on_step, start: float, on_checkpoint, cfg: TrainConfig):
    from transformers import TrainerCallback

    class Bridge(TrainerCallback):
        """TRL's logs into our run log and TrainResult; the method's per-step hook."""

        def on_optimizer_step(self, args, state, control, **kwargs):
            if on_step is not None:
                on_step(state.global_step + 1)

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" not in logs:
                return
            result.losses.append(float(logs["loss"]))
            record = {"step": state.global_step, "loss": logs["loss"], "elapsed_s": time.perf_counter() - start}
            record.update({k: v for k, v in logs.items() if k.startswith(("reward", "kl", "completions/mean_length"))})
            if "learning_rate" in logs:
                record["lr"] = logs["learning_rate"]
            if log is not None:
                log.write(record)
            if not math.isfinite(float(logs["loss"])):
                result.status, result.reason = "diverged", f"loss is {logs['loss']} at step {state.global_step}"
                control.should_training_stop = True

        paused = 0.0  # seconds spent scoring checkpoints, kept out of the training time

        def on_step_end(self, args, state, control, **kwargs):
            advance(1, status=f"loss {result.losses[-1]:.4f}" if result.losses else "")
            if on_checkpoint is not None and is_checkpoint(state.global_step, result.total_steps, cfg):
                began = time.perf_counter()
                model = kwargs["model"]
                on_checkpoint(state.global_step)
                model.train()
                self.paused += time.perf_counter() - began

    return Bridge()


def train_grpo(
    model: nn.Module,
    tokenizer,
    task: Task,
    examples: Sequence[Example],
    cfg: TrainConfig,
    log=None,
    show_progress: bool = True,
    optimizer=None,
    on_step: Optional[Callable[[int], None]] = None,
    output_dir: str = "grpo",
    on_checkpoint: Optional[Callable[[int], None]] = None,
) -> TrainResult:
    """Train `model` (already carrying its method) in place with GRPO on `examples`' prompts."""
    from transformers.trainer_callback import PrinterCallback
    from peftbench.extras import require

    trl = require("trl", "train.mode: grpo")
    GRPOConfig, GRPOTrainer = trl.GRPOConfig, trl.GRPOTrainer

    grpo = cfg.grpo
    device = next(model.parameters()).device
    total = total_optimizer_steps(len(examples), cfg)  # batch_size counts prompts here
    args = GRPOConfig(
        output_dir=output_dir, report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
        per_device_train_batch_size=cfg.batch_size * grpo.num_generations, gradient_accumulation_steps=cfg.grad_accum,
        num_generations=grpo.num_generations, beta=grpo.beta, temperature=grpo.temperature,
        max_completion_length=grpo.max_completion_length, learning_rate=cfg.lr, lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_steps or math.ceil(cfg.warmup_ratio * total), weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm or 0.0, max_steps=total, seed=cfg.seed, use_cpu=device.type == "cpu",
        bf16=False, fp16=False, loss_type=grpo.loss_type, epsilon=grpo.epsilon, scale_rewards=grpo.scale_rewards,
        **checkpointing_argument(GRPOConfig, False),
    )
    result = TrainResult(status="completed", steps=0, total_steps=total,
                         attention=transformer_of(model).config._attn_implementation)
    start = time.perf_counter()
    with progress_bar(total, "training (GRPO)", show_progress) as advance:
        bridge = _trainer_callback(result, log, advance, on_step, start, on_checkpoint, cfg)
        trainer = GRPOTrainer(
            model=model, reward_funcs=[reward_function(task)], args=args, train_dataset=_dataset(tokenizer, examples),
            processing_class=tokenizer, optimizers=(optimizer, None),
            callbacks=[bridge],
        )
        trainer.remove_callback(PrinterCallback)  # our bridge logs; the printer would dump every dict to stdout
        with peft_generation_sees_the_cache(model):  # TRL samples through peft's generate
            output = trainer.train()
    result.seconds = time.perf_counter() - start - bridge.paused
    result.steps = trainer.state.global_step
    tokens = output.metrics.get("num_input_tokens_seen") or trainer.state.num_input_tokens_seen
    result.tokens = int(tokens or 0)
    result.samples = result.steps * cfg.batch_size * cfg.grad_accum * grpo.num_generations
    model.eval()
    return result
