"""SFT training throughput: peftbench's loop against the peers a user would pick: TRL's
SFTTrainer (padding-free, completion-only loss) and the plain transformers Trainer + peft.

    python benchmarks/bench_train.py --sides all --model micro --out benchmarks/results/bench_train.json
    python benchmarks/bench_train.py --model 100m --steps 6 --reps 2

Both sides get the same model, the same LoRA, the same tokenised examples (prompt masked
out of the loss, as every peftbench task) and the same batch size, in one process, in
alternating order, several repetitions. The baseline is what the seed studies ran: a
`Trainer` over the peft model, a shuffled sampler, `DataCollatorForSeq2Seq` padding each
batch of 16 to its longest example. peftbench runs its own loop with packed batches
(`train.batching: packed`, the default) and, as a second variant, with length-grouped
padded batches; each side also in bf16 mixed precision (`train.precision: bf16`, which on
CPU trains with eager attention; the Trainer's `bf16=True`, with the model's SDPA and, to
separate the kernel choice from the rest, with eager too). The figure is real (non-pad) tokens per second of wall time around the
whole training call; the JSON keeps every repetition and the median ratio.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from contextlib import nullcontext
from itertools import islice
from pathlib import Path
from unittest.mock import patch

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from report_file import add_allocator_option, add_device_option, apply_allocator, header, write
from peftbench.config import ModelConfig, TrainConfig
from peftbench.cost.measure import PeakMemory
from peftbench.methods import METHODS
from peftbench.models import load_model, load_tokenizer
from peftbench.models.loading import transformer_of
from peftbench.tasks import TASKS
from peftbench.train import sft, train_sft
from peftbench.train.data import BATCHERS, encode_examples, real_tokens

# a mixture with the length spread real SFT data has: short reviews, word problems,
# code specs and longer passages
MIXTURE = ("micro-sentiment", "micro-math", "micro-code", "micro-nli", "micro-med")


def training_examples(count: int):
    """`count` examples drawn evenly from the mixture: exactly one epoch for both sides, so
    both train on every example once and process the same real tokens."""
    per_task = -(-count // len(MIXTURE))
    examples = [e for name in MIXTURE for e in TASKS.get(name).examples("train", limit=per_task, seed=0)]
    random.Random(0).shuffle(examples)
    return examples[:count]


def build_model(kind: str, device: str = "cpu"):
    if kind in ("micro", "smollm2-135m"):  # real models, each with its own tokenizer (SmolLM2's: 49k tokens)
        cfg = ModelConfig(name=kind, device=device)
        return load_model(cfg), load_tokenizer(cfg)
    tokenizer = load_tokenizer(ModelConfig(name="micro"))
    # ~100M parameters from config (random init: throughput does not depend on the weights)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=768, intermediate_size=2048, num_hidden_layers=14,
                         num_attention_heads=12, num_key_value_heads=12, max_position_embeddings=1024,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.bos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return LlamaForCausalLM(config).to(device), tokenizer


def with_lora(model):
    lora = METHODS.get("lora")
    return lora.attach(model, lora.params({"r": 8, "alpha": 16, "target_modules": "all-linear"}))


def run_baseline(model, tokenizer, examples, args, bf16: bool = False, attention: str | None = None) -> dict:
    """transformers Trainer + peft, padded batches: the recipe of the seed studies."""
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    if attention:
        transformer_of(model).set_attn_implementation(attention)

    encoded = encode_examples(tokenizer, examples, args.max_length)
    data = Dataset.from_list([{"input_ids": e.input_ids, "labels": e.labels} for e in encoded])
    targs = TrainingArguments(
        output_dir=str(Path(args.work) / "trainer"), per_device_train_batch_size=args.batch_size,
        max_steps=args.steps, learning_rate=args.lr, lr_scheduler_type="linear", logging_steps=10_000,
        save_strategy="no", report_to=[], seed=0, disable_tqdm=True, use_cpu=args.device == "cpu", dataloader_num_workers=0,
        bf16=bf16)
    collator = PositionCounting(DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100))
    trainer = Trainer(model=model, args=targs, train_dataset=data, data_collator=collator)
    start = time.perf_counter()
    output = trainer.train()
    synchronize()
    seconds = time.perf_counter() - start
    # one epoch of exactly steps x batch examples: every token is seen once
    return {"seconds": seconds, "tokens": sum(len(e.input_ids) for e in encoded), "mean_loss": output.training_loss,
            "positions": collator.positions, "examples": collator.examples,
            "collated_tokens": collator.real_tokens}


def run_trl(model, tokenizer, examples, args, bf16: bool = False) -> dict:
    """TRL's SFTTrainer as its users run it on prompt-completion data: loss on the completion
    only, padding-free batches (TRL's `padding_free`, what its `packing="bfd"` collates with:
    each batch's examples concatenated into one row, position ids restarting per example).
    Packing is off so that a step holds the same 16 examples as every other side's (with
    packing a row is a bin of examples and batch_size counts bins)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    encoded = encode_examples(tokenizer, examples, args.max_length)
    # pre-tokenised: TRL builds the labels from completion_mask (completion_only_loss)
    data = Dataset.from_list([{"input_ids": e.input_ids, "completion_mask": [int(x != -100) for x in e.labels]}
                              for e in encoded])
    sargs = SFTConfig(
        output_dir=str(Path(args.work) / "trl"), per_device_train_batch_size=args.batch_size, max_steps=args.steps,
        learning_rate=args.lr, lr_scheduler_type="linear", logging_steps=10_000, save_strategy="no", report_to=[],
        seed=0, disable_tqdm=True, use_cpu=args.device == "cpu", dataloader_num_workers=0, bf16=bf16,
        padding_free=True, packing=False, completion_only_loss=True, max_length=None,  # encoded: already cut
        dataset_num_proc=None)
    trainer = SFTTrainer(model=model, args=sargs, train_dataset=data, processing_class=tokenizer)
    trainer.data_collator = PositionCounting(trainer.data_collator)
    start = time.perf_counter()
    output = trainer.train()
    synchronize()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "tokens": sum(len(e.input_ids) for e in encoded), "mean_loss": output.training_loss,
            "positions": trainer.data_collator.positions, "examples": trainer.data_collator.examples,
            "collated_tokens": trainer.data_collator.real_tokens}


class PositionCounting:
    """A collator that counts the positions (real tokens and padding) of the batches it makes:
    the work a compute-bound step does is proportional to them."""

    def __init__(self, collator):
        self.collator, self.positions, self.real_tokens, self.examples = collator, 0, 0, []

    def __call__(self, features):
        batch = self.collator(features)
        self.positions += batch["input_ids"].numel()
        # padding-free rows have no mask and no padding (pad_to_multiple_of is off)
        mask = batch.get("attention_mask")
        self.real_tokens += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
        self.examples.append(len(features))  # examples per step: the same for every side
        return batch


def synchronize() -> None:
    if torch.cuda.is_available():  # the clock stops when the GPU's work is done, not when it is queued
        torch.cuda.synchronize()


def run_peftbench(model, tokenizer, examples, args, batching: str, group: bool, precision: str = "fp32",
                  all_logits: bool = False, **speedups) -> dict:
    """`speedups`: TrainConfig's liger, compile, attention."""
    cfg = TrainConfig(max_steps=args.steps, batch_size=args.batch_size, lr=args.lr, max_length=args.max_length,
                      batching=batching, group_by_length=group, logging_steps=10_000, precision=precision,
                      **speedups)
    # all_logits: the vocabulary projection at every position, as before train/loss.py (no
    # setting switches it off: it changes nothing but the cost, so only this measurement does)
    with patch.object(sft, "scores_selectively", lambda model: False) if all_logits else nullcontext():
        start = time.perf_counter()
        result = train_sft(model, tokenizer, examples, cfg, show_progress=False)
        synchronize()
        seconds = time.perf_counter() - start
    positions, tokens, sizes = batch_positions(tokenizer, examples, cfg)
    if tokens != result.tokens:  # the replay below must be the loop's own batches
        raise RuntimeError(f"replayed batches hold {tokens} real tokens, the loop trained on {result.tokens}")
    return {"seconds": seconds, "tokens": result.tokens, "mean_loss": sum(result.losses) / len(result.losses),
            "positions": positions, "examples": sizes, "collated_tokens": tokens}


def batch_positions(tokenizer, examples, cfg: TrainConfig) -> tuple[int, int, list[int]]:
    """(positions, real tokens, examples per batch) of the batches `train_sft` made under `cfg` (positions count
    padding too): its batch stream depends only on the seed, so it is replayed here."""
    encoded = encode_examples(tokenizer, examples, cfg.max_length)
    batches = list(islice(sft._micro_batches(encoded, cfg), cfg.max_steps * cfg.grad_accum))
    collate = BATCHERS[cfg.batching]
    positions = sum(collate(batch, tokenizer.pad_token_id)["input_ids"].numel() for batch in batches)
    return positions, sum(real_tokens(batch) for batch in batches), [len(batch) for batch in batches]


# fp32 on both sides is the like-for-like comparison; bf16 (autocast over float32 weights)
# is shown on both sides too, for CPUs with native bf16 and for GPUs
VARIANTS = {
    "baseline_trainer_padded": lambda m, t, e, a: run_baseline(m, t, e, a),
    "baseline_trainer_padded_bf16": lambda m, t, e, a: run_baseline(m, t, e, a, bf16=True),
    # the Trainer in bf16 with the attention kernel peftbench picks for bf16 on CPU: how much
    # of peftbench's bf16 figure is that choice alone
    "baseline_trainer_padded_bf16_eager": lambda m, t, e, a: run_baseline(m, t, e, a, bf16=True, attention="eager"),
    # the strongest peer a user would pick: TRL's SFTTrainer, padding-free, completion-only loss
    "trl_sft_padding_free": lambda m, t, e, a: run_trl(m, t, e, a),
    "trl_sft_padding_free_bf16": lambda m, t, e, a: run_trl(m, t, e, a, bf16=True),
    "peftbench_packed": lambda m, t, e, a: run_peftbench(m, t, e, a, "packed", False),
    "peftbench_packed_all_logits": lambda m, t, e, a: run_peftbench(m, t, e, a, "packed", False, all_logits=True),
    "peftbench_padded_grouped": lambda m, t, e, a: run_peftbench(m, t, e, a, "padded", True),
    "peftbench_packed_bf16": lambda m, t, e, a: run_peftbench(m, t, e, a, "packed", False, "bf16"),
    "peftbench_padded_grouped_bf16": lambda m, t, e, a: run_peftbench(m, t, e, a, "padded", True, "bf16"),
    # CUDA only, with liger-kernel installed (train.liger)
    "peftbench_packed_bf16_liger": lambda m, t, e, a: run_peftbench(m, t, e, a, "packed", False, "bf16", liger=True),
}
CPU_VARIANTS = [v for v in VARIANTS if not v.endswith("_liger")]


def measure(kind: str, variant: str, examples, args) -> dict:
    model, tokenizer = build_model(kind, args.device)
    model = with_lora(model)
    gc.collect()
    with PeakMemory(torch.device(args.device)) as memory:
        figures = VARIANTS[variant](model, tokenizer, examples, args)
    if figures["collated_tokens"] != figures["tokens"] or set(figures["examples"]) != {args.batch_size}:
        raise RuntimeError(f"{variant} did not train on the common batches: {figures['collated_tokens']} real "
                           f"tokens of {figures['tokens']}, examples per step {sorted(set(figures['examples']))}")
    figures["examples"] = len(figures["examples"]) * args.batch_size  # checked above: batch_size every step
    figures["tokens_per_s"] = figures["tokens"] / figures["seconds"]
    figures["positions_per_token"] = figures["positions"] / figures["tokens"]  # 1.0: no padding
    figures["peak_rss_bytes" if args.device == "cpu" else "peak_cuda_allocated_bytes"] = memory.peak_bytes
    del model
    return figures


PEERS = ("baseline_trainer_padded", "trl_sft_padding_free")


def step_flops(kind: str, examples, args) -> dict:
    """FLOPs (torch's FlopCounterMode: matmuls and attention) of one forward + backward on the
    same first 16 examples as each side batches them, per real token: the work a side must do,
    whatever its speed. Beside the machine's measured matmul rate this bounds what any side
    can gain over another on a compute-bound CPU."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import DataCollatorForSeq2Seq
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model, tokenizer = build_model(kind, args.device)
    model = with_lora(model)
    encoded = encode_examples(tokenizer, examples[: args.batch_size], args.max_length)
    real = sum(len(e.input_ids) for e in encoded)
    features = [{"input_ids": e.input_ids, "labels": e.labels} for e in encoded]
    batches = {
        "peftbench_packed": (BATCHERS["packed"](encoded, tokenizer.pad_token_id), True),
        "trl_sft_padding_free": (DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id,
                                                                 padding_free=True)(features), False),
        "baseline_trainer_padded": (DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)(features),
                                    False),
    }
    found = {}
    for side, (batch, selective) in batches.items():
        batch = {k: v for k, v in batch.items() if k in ("input_ids", "labels", "position_ids", "attention_mask")}
        with FlopCounterMode(display=False) as counter:
            loss = sft.answer_loss(model, batch, selective) if selective else model(**batch, use_cache=False).loss
            loss.backward()
        model.zero_grad(set_to_none=True)
        found[side] = counter.get_total_flops() / real
    # the machine's float32 matmul rate at the model's own shapes (a feed-forward projection
    # over a batch's worth of tokens), the ceiling every side's dense work runs under
    hidden = model.get_input_embeddings().weight.shape[1]
    inner = getattr(getattr(transformer_of(model), "config", None), "intermediate_size", 4 * hidden)
    a, b = torch.randn(real, hidden), torch.randn(hidden, inner)
    for _ in range(3):
        a @ b
    start, reps = time.perf_counter(), 20
    for _ in range(reps):
        a @ b
    peak = 2 * real * hidden * inner * reps / (time.perf_counter() - start)
    return {"flops_per_real_token": found, "matmul_flops_per_s": peak}


def bound(flops: dict, median: dict) -> dict:
    """Each side's achieved FLOP/s as a fraction of the measured matmul rate, and the most
    peftbench's packed side could gain over the fastest fp32 peer if it ran at that rate."""
    per_token = flops["flops_per_real_token"]
    achieved = {side: median[side] * per_token[side] for side in per_token if side in median}
    fraction = {side: rate / flops["matmul_flops_per_s"] for side, rate in achieved.items()}
    peers = [p for p in PEERS if p in median]
    fastest = max(peers, key=lambda p: median[p]) if peers else None
    ceiling = None
    if fastest and "peftbench_packed" in per_token:
        ceiling = flops["matmul_flops_per_s"] / per_token["peftbench_packed"] / median[fastest]
    return {"achieved_flops_per_s": achieved, "fraction_of_matmul_rate": fraction, "fastest_fp32_peer": fastest,
            "ceiling_vs_fastest_peer": ceiling}


def per_rep_vs_peer(runs: dict[str, list[dict]]) -> dict[str, list[float]]:
    """For each peftbench side: per repetition, its tokens/s over the fastest peer's (same
    precision) in that repetition."""
    ratios = {}
    for side, reps in runs.items():
        if not side.startswith("peftbench"):
            continue
        suffix = "_bf16" if "_bf16" in side else ""
        peers = [runs[p + suffix] for p in PEERS if p + suffix in runs]
        if peers:
            ratios[side] = [round(rep["tokens_per_s"] / max(peer[i]["tokens_per_s"] for peer in peers), 3)
                            for i, rep in enumerate(reps)]
    return ratios


def memory_bytes(figures: dict) -> int:
    return figures.get("peak_rss_bytes", figures.get("peak_cuda_allocated_bytes"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["micro", "100m", "smollm2-135m"], default="micro")
    parser.add_argument("--sides", "--variants", dest="variants", nargs="+", choices=[*VARIANTS, "all"],
                        default=["all"], help="sides to run (the baseline is always one of them; all: every "
                        "side this device runs)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--work", default="/tmp/peftbench-bench-train")
    parser.add_argument("--out", default=None)
    add_device_option(parser)
    add_allocator_option(parser)
    args = parser.parse_args()
    apply_allocator(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    chosen = (CPU_VARIANTS if args.device == "cpu" else list(VARIANTS)) if "all" in args.variants else args.variants
    variants = {v: VARIANTS[v] for v in dict.fromkeys(["baseline_trainer_padded", *chosen])}
    examples = training_examples(args.steps * args.batch_size)
    tokenizer = load_tokenizer(ModelConfig(name="micro" if args.model == "100m" else args.model))
    encoded = encode_examples(tokenizer, examples, args.max_length)
    lengths = sorted(len(e.input_ids) for e in encoded)
    print(f"{len(examples)} examples, lengths min {lengths[0]} median {lengths[len(lengths) // 2]} max {lengths[-1]}")

    # untimed warm-up of every path (first calls pay for kernel selection and allocation)
    warm = argparse.Namespace(**{**vars(args), "steps": 2})
    for variant in variants:
        measure(args.model, variant, examples[: 2 * args.batch_size], warm)

    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for rep in range(args.reps):
        order = list(variants) if rep % 2 == 0 else list(reversed(variants))  # alternate who goes first
        for variant in order:
            figures = measure(args.model, variant, examples, args)
            runs[variant].append(figures)
            print(f"rep {rep} {variant:30s} {figures['tokens_per_s']:9.1f} tok/s  {figures['seconds']:6.2f} s  "
                  f"peak memory {memory_bytes(figures) / 2**20:.0f} MiB  positions/token {figures['positions_per_token']:.2f}  "
                  f"mean loss {figures['mean_loss']:.3f}")

    median = {v: statistics.median(r["tokens_per_s"] for r in runs[v]) for v in variants}
    base = median["baseline_trainer_padded"]
    positions = {v: runs[v][0]["positions_per_token"] for v in variants}  # the same batches every repetition
    # On a compute-bound step the work is proportional to the positions; a side that only
    # removes padding can gain at most the ratio of positions per real token
    padding_bound = {v: positions["baseline_trainer_padded"] / positions[v] for v in variants}
    report = {
        **header("bench_train", args, left_out=("out", "work")), "model": args.model,
        "data": {"tasks": MIXTURE, "examples": len(examples), "length_min_median_max": [lengths[0], lengths[len(lengths) // 2], lengths[-1]]},
        "median_tokens_per_s": median,
        "ratio_vs_baseline": {v: median[v] / base for v in variants},
        # each repetition's peftbench side against the fastest peer of the same repetition
        "per_rep_ratio_vs_fastest_peer": per_rep_vs_peer(runs),
        "mean_loss_median": {v: statistics.median(r["mean_loss"] for r in runs[v]) for v in variants},
        "positions_per_token": positions,
        "padding_bound_vs_baseline": padding_bound,
        "runs": runs,
    }
    for variant in variants:
        print(f"{variant:30s} median {median[variant]:9.1f} tok/s   x{median[variant] / base:.2f}   "
              f"positions/token {positions[variant]:.2f} (padding alone: x{padding_bound[variant]:.2f})")
    for side, ratios in report["per_rep_ratio_vs_fastest_peer"].items():
        print(f"{side:30s} per repetition vs the fastest peer: {', '.join(f'x{r:.2f}' for r in ratios)}")
    if args.device == "cpu":
        flops = step_flops(args.model, examples, args)
        report["flops"], report["bound"] = flops, bound(flops, median)
        for side, fraction in report["bound"]["fraction_of_matmul_rate"].items():
            print(f"{side:30s} {flops['flops_per_real_token'][side] / 1e6:8.1f} MFLOP per real token, "
                  f"{100 * fraction:.0f}% of the measured matmul rate ({flops['matmul_flops_per_s'] / 1e9:.0f} GFLOP/s)")
        if report["bound"]["ceiling_vs_fastest_peer"]:
            print(f"ceiling: peftbench packed at the full matmul rate would be "
                  f"x{report['bound']['ceiling_vs_fastest_peer']:.2f} the fastest fp32 peer")
    write(report, args.out)


if __name__ == "__main__":
    main()
