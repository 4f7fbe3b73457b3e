"""Supervised fine-tuning: a lean loop, loss on answer tokens only.

A loop of our own rather than the HF Trainer: it is short, every step is visible
(divergence check, throughput, logging), and the batching can later be swapped for
packed or padding-free batches without fighting Trainer internals.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Sequence

import torch
from torch import nn
from transformers import get_scheduler

from peftbench.config import TrainConfig
from peftbench.io import JsonlLog
from peftbench.models.compat import disable_checkpointing, enable_checkpointing
from peftbench.models.loading import transformer_of
from peftbench.progress import progress_bar
from peftbench.tasks.base import Example
from peftbench.train.data import BATCHERS, encode_examples, epoch_batches, pad_batch, real_tokens
from peftbench.train.distributed import team_for
from peftbench.train.fused_lora import fused_lora
from peftbench.train.liger import liger_kernels
from peftbench.train.loss import answer_loss, scores_selectively


@dataclass
class TrainResult:
    status: str  # "completed" or "diverged"
    steps: int
    total_steps: int
    losses: list[float] = field(default_factory=list)  # mean loss of each optimiser step
    target_tokens: int = 0  # answer tokens trained on (the ones with a loss)
    tokens: int = 0  # non-pad tokens processed
    samples: int = 0
    seconds: float = 0.0
    reason: Optional[str] = None
    validation_losses: list[float] = field(default_factory=list)  # mean loss on validation, per epoch
    best_epoch: Optional[int] = None  # the epoch whose weights were kept (select_best)
    attention: Optional[str] = None  # the attention kernel the model trained with

    @property
    def first_loss(self) -> Optional[float]:
        return self.losses[0] if self.losses else None

    @property
    def final_loss(self) -> Optional[float]:
        window = self.losses[-max(1, min(10, len(self.losses) // 10 or 1)) :]
        return sum(window) / len(window) if window else None

    def after(self, first: "TrainResult") -> "TrainResult":
        """This phase's result with an earlier phase's counts added (SFT warm-up, then RL)."""
        return TrainResult(
            status=self.status, steps=first.steps + self.steps, total_steps=first.total_steps + self.total_steps,
            losses=first.losses + self.losses, target_tokens=first.target_tokens + self.target_tokens,
            tokens=first.tokens + self.tokens, samples=first.samples + self.samples,
            seconds=first.seconds + self.seconds, reason=self.reason, attention=self.attention,
        )

    def summary(self) -> dict:
        return {
            "status": self.status,
            "steps": self.steps,
            "total_steps": self.total_steps,
            "first_loss": self.first_loss,
            "final_loss": self.final_loss,
            "tokens": self.tokens,
            "target_tokens": self.target_tokens,
            "samples": self.samples,
            "seconds": self.seconds,
            "tokens_per_s": self.tokens / self.seconds if self.seconds else None,
            "samples_per_s": self.samples / self.seconds if self.seconds else None,
            "reason": self.reason,
            "validation_losses": self.validation_losses or None,
            "best_epoch": self.best_epoch,
            "attention": self.attention,
        }


def is_checkpoint(step: int, total: int, cfg: TrainConfig) -> bool:
    """Whether the trajectory is scored after `step` (the final model is scored anyway)."""
    return bool(cfg.checkpoint_every) and step % cfg.checkpoint_every == 0 and step < total


def total_optimizer_steps(n_examples: int, cfg: TrainConfig) -> int:
    if cfg.max_steps is not None:
        return cfg.max_steps
    batches = math.ceil(n_examples / cfg.batch_size)
    return cfg.epochs * math.ceil(batches / cfg.grad_accum)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters: the method attached nothing")
    # The usual split: no weight decay on biases and norm scales (1-D tensors).
    groups = [
        {"params": [p for p in trainable if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    try:  # one fused kernel for the whole update where torch has it (CUDA, CPU), else the foreach loop
        return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(groups, lr=cfg.lr)


def autocast_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for train.precision, or None for plain float32."""
    if precision == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else None
    return torch.bfloat16 if precision == "bf16" else None


def training_attention(choice: str, device: torch.device, amp: Optional[torch.dtype]) -> Optional[str]:
    """The attention kernel to train with, or None to keep the model's own.

    auto picks eager for bf16 on CPU: there torch's SDPA backward with a mask (every packed
    batch has its block-diagonal one) runs ~5x slower in bf16 than the plain matmul-softmax
    path; eager made a micro LoRA step 1.3x faster than fp32 SDPA, sdpa in bf16 0.8x
    (benchmarks/README.md). Elsewhere SDPA (or flash attention, when asked for) is the fast path.
    """
    if choice != "auto":
        return choice
    return "eager" if device.type == "cpu" and amp is not None else None


@contextmanager
def uncast_adapter_inputs(model: nn.Module, active: bool):
    """peft's input casting off on the layers that have it while the block runs (peft's own
    helper, disable_input_dtype_casting, fails on tuner layers without the switch: IA3, VeRA)."""
    layers = [m for m in model.modules() if getattr(m, "cast_input_dtype_enabled", False)] if active else []
    for layer in layers:
        layer.cast_input_dtype_enabled = False
    try:
        yield
    finally:
        for layer in layers:
            layer.cast_input_dtype_enabled = True


@contextmanager
def training_speedups(model: nn.Module, cfg: TrainConfig, attention: Optional[str] = None,
                      amp: Optional[torch.dtype] = None):
    """Gradient checkpointing, torch.compile, Liger's kernels, the training attention kernel,
    (under autocast) uncast adapter inputs and (on CPU) fused LoRA layers, for the training
    loop only: evaluation afterwards runs the plain model (generation needs none of them)."""
    inner = transformer_of(model)
    own_attention = inner.config._attn_implementation
    if attention and attention != own_attention:
        inner.set_attn_implementation(attention)
    if cfg.gradient_checkpointing:
        enable_checkpointing(inner)
    if cfg.compile:
        inner.compile(dynamic=True)
    try:
        # peft casts each adapter's input to the adapter's float32 weights; under autocast the
        # matmul casts it straight back to bf16, so the two copies (and their backward) change
        # no number: measured ~19% of a 1B LoRA step's GPU time before this
        # fused LoRA: measured on CPU only (SmolLM2-135M LoRA steps x1.06 fp32, x1.22 bf16)
        on_cpu = next(model.parameters()).device.type == "cpu"
        with liger_kernels(inner) if cfg.liger else nullcontext(), \
                uncast_adapter_inputs(model, active=amp is not None), fused_lora(model, active=on_cpu):
            yield
    finally:
        if cfg.gradient_checkpointing:
            disable_checkpointing(inner)
        if cfg.compile:
            inner._compiled_call_impl = None  # what nn.Module.compile set: calls go to forward again
        if inner.config._attn_implementation != own_attention:
            inner.set_attn_implementation(own_attention)


def _warmup_steps(cfg: TrainConfig, total: int) -> int:
    return cfg.warmup_steps if cfg.warmup_steps > 0 else math.ceil(cfg.warmup_ratio * total)


@torch.no_grad()
def validation_loss(model: nn.Module, tokenizer, encoded, batch_size: int) -> float:
    """Mean loss per answer token over a validation set (the model is left in eval mode)."""
    device = next(model.parameters()).device
    model.eval()
    selective = scores_selectively(model)
    total, tokens = 0.0, 0
    for start in range(0, len(encoded), batch_size):
        batch = encoded[start : start + batch_size]
        padded = {k: v.to(device) for k, v in pad_batch(batch, tokenizer.pad_token_id).items()}
        n = sum(e.target_tokens for e in batch)
        total += answer_loss(model, padded, selective).item() * n
        tokens += n
    return total / max(tokens, 1)


class _BestWeights:
    """The trainable weights of the best epoch so far (a CPU copy: adapters are small;
    for full fine-tuning it is one copy of the model)."""

    def __init__(self, model: nn.Module):
        self.model, self.loss, self.state = model, math.inf, None

    def offer(self, loss: float) -> bool:
        if loss >= self.loss:
            return False
        self.loss = loss
        self.state = {n: p.detach().to("cpu", copy=True) for n, p in self.model.named_parameters() if p.requires_grad}
        return True

    def restore(self) -> None:
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in (self.state or {}).items():
                params[name].copy_(value)


def _micro_batches(encoded, cfg: TrainConfig) -> Iterator[list]:
    """Endless stream of batches, reshuffled each epoch; the loop stops it by step count."""
    if not encoded:  # an endless stream of nothing would spin forever
        raise ValueError("no training examples to batch")
    epoch = 0
    while True:
        yield from epoch_batches(encoded, cfg.batch_size, cfg.seed, epoch, cfg.group_by_length)
        epoch += 1


def train_sft(
    model: nn.Module,
    tokenizer,
    examples: Sequence[Example],
    cfg: TrainConfig,
    log: Optional[JsonlLog] = None,
    show_progress: bool = True,
    optimizer: Optional[torch.optim.Optimizer] = None,
    on_step: Optional[Callable[[int], None]] = None,
    validation: Optional[Sequence[Example]] = None,
    on_checkpoint: Optional[Callable[[int], None]] = None,
) -> TrainResult:
    """Train in place. `optimizer` replaces the default AdamW (LoRA+); `on_step(step)` runs
    after each optimiser step while gradients still exist (AdaLoRA's rank reallocation).
    With `validation`, the validation loss is measured after every epoch; with
    `cfg.select_best` the weights of the epoch where it was lowest are kept."""
    if cfg.select_best and not validation:
        raise ValueError("train.select_best needs validation examples: a task with a validation split, "
                         "or task.validation_fraction to hold some training examples out")
    device = next(model.parameters()).device
    encoded = encode_examples(tokenizer, examples, cfg.max_length, cfg.loss_on_prompt)
    held_out = encode_examples(tokenizer, validation, cfg.max_length) if validation else None
    best = _BestWeights(model) if cfg.select_best else None
    total = total_optimizer_steps(len(encoded), cfg)
    steps_per_epoch = math.ceil(math.ceil(len(encoded) / cfg.batch_size) / cfg.grad_accum)
    optimizer = optimizer or build_optimizer(model, cfg)
    scheduler = get_scheduler(
        cfg.lr_scheduler, optimizer, num_warmup_steps=_warmup_steps(cfg, total), num_training_steps=total
    )
    result = TrainResult(status="completed", steps=0, total_steps=total)
    batches = _micro_batches(encoded, cfg)
    collate = BATCHERS["padded" if cfg.batching == "auto" else cfg.batching]  # auto is resolved by the caller
    amp = autocast_dtype(cfg.precision, device)
    team = team_for(model, device)  # several processes under `accelerate launch`, else one
    window_loss, window_tokens, window_start = [], 0, time.perf_counter()
    start = time.perf_counter()
    model.train()
    attention = training_attention(cfg.attention, device, amp)
    result.attention = attention or transformer_of(model).config._attn_implementation
    selective = scores_selectively(model)  # vocabulary logits at the answer positions only
    with training_speedups(model, cfg, attention, amp), progress_bar(total, "training", show_progress) as advance:
        while result.steps < total:
            step_loss = 0.0
            for micro in range(cfg.grad_accum):
                batch = next(batches)  # the whole batch: every process walks the same seeded order
                mine = team.shard(batch)
                tensors = {k: v.to(device) for k, v in collate(mine, tokenizer.pad_token_id).items()}
                with team.sync(last_micro_batch=micro == cfg.grad_accum - 1):
                    with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                        loss = team.weighted(answer_loss(team.model, tensors, selective), batch, mine)
                    value = team.mean(loss)  # the batch's loss, agreed by every process
                    if not math.isfinite(value):
                        return _diverged(model, result, start, f"loss is {value} at step {result.steps + 1}")
                    team.backward(loss / cfg.grad_accum)
                step_loss += value / cfg.grad_accum
                n_real = real_tokens(batch)
                result.tokens += n_real
                result.target_tokens += sum(e.target_tokens for e in batch)
                result.samples += len(batch)
                window_tokens += n_real
            if cfg.max_grad_norm is not None:
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                if not torch.isfinite(norm):
                    return _diverged(model, result, start, f"gradient norm is {norm.item()} at step {result.steps + 1}")
            optimizer.step()
            if on_step is not None:
                on_step(result.steps + 1)
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            result.steps += 1
            result.losses.append(step_loss)
            window_loss.append(step_loss)
            advance(1, status=f"loss {step_loss:.4f}")
            if log is not None and (result.steps % cfg.logging_steps == 0 or result.steps == total):
                elapsed = time.perf_counter() - window_start
                log.write(
                    {
                        "step": result.steps,
                        "loss": sum(window_loss) / len(window_loss),
                        "lr": scheduler.get_last_lr()[0],
                        "tokens_per_s": window_tokens / elapsed if elapsed > 0 else None,
                        "elapsed_s": time.perf_counter() - start,
                    }
                )
                window_loss, window_tokens, window_start = [], 0, time.perf_counter()
            if held_out and (result.steps % steps_per_epoch == 0 or result.steps == total):
                _end_of_epoch(model, tokenizer, held_out, cfg, result, best, log, steps_per_epoch)
            if on_checkpoint is not None and is_checkpoint(result.steps, total, cfg):
                paused = time.perf_counter()
                on_checkpoint(result.steps)
                model.train()
                shift = time.perf_counter() - paused  # scoring is not training: keep it out of the timings
                start, window_start = start + shift, window_start + shift
    if best is not None and best.state is not None:
        best.restore()
    model.eval()
    result.seconds = time.perf_counter() - start
    return result


def _end_of_epoch(model, tokenizer, held_out, cfg: TrainConfig, result: TrainResult, best, log, steps_per_epoch: int):
    loss = validation_loss(model, tokenizer, held_out, cfg.batch_size)
    epoch = math.ceil(result.steps / steps_per_epoch)
    result.validation_losses.append(loss)
    if best is not None and best.offer(loss):
        result.best_epoch = epoch
    if log is not None:
        log.write({"step": result.steps, "epoch": epoch, "validation_loss": loss})
    model.train()


def _diverged(model: nn.Module, result: TrainResult, start: float, reason: str) -> TrainResult:
    model.eval()
    result.status = "diverged"
    result.reason = reason
    result.seconds = time.perf_counter() - start
    return result
