"""Model FLOPs utilisation of LoRA SFT on a ~1B-parameter Llama, on a CUDA GPU.

    python benchmarks/bench_mfu.py --out benchmarks/results/bench_mfu_h100.json

The model is built from config (TinyLlama's shape: 22 layers, width 2048, MLP 5632, GQA
32/4 heads, 32k vocabulary; random weights: throughput does not depend on them). Each
example is a short prompt and a long answer (~2k tokens in all, the micro tokenizer's BPE), so nearly every position
is scored, as in the long-answer SFT that MFU figures usually describe. LoRA r=8 on every
linear layer. Each side trains `--steps` steps after an untimed warm-up, in one process,
alternating, `--reps` times:

- baseline: the transformers Trainer over the peft model, bf16=True (bench_train.py's recipe);
- peftbench in bf16 autocast over float32 base weights (`train.precision: auto` on CUDA);
- peftbench with the base weights in bf16 (`model.dtype: bfloat16`), and that with Liger's
  kernels (`train.liger`, when liger-kernel is installed).

Three figures per side, from real tokens per second:
- `mfu_6n`: 6 x parameters per token (PaLM's convention, + its 12·L·d·T attention term),
  over the GPU's dense bf16 peak. The convention counts weight gradients, which LoRA does not
  compute for frozen weights, so it flatters LoRA: it is what published figures quote.
- `mfu_lora`: the FLOPs a LoRA step needs: 4 x parameters per token (forward, and the
  backward to activations) + the attention term; over the same peak.
- `hfu`: the FLOPs the step really executed (torch's FlopCounterMode over one training
  step), over the same peak.
The peak is the datasheet's (`--peak-tflops`, H100 SXM: 989.4); the JSON also records a
measured 8192^3 bf16 matmul rate on the same GPU.
"""

from __future__ import annotations

import argparse
import copy
import gc
import random
import statistics
import string
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import LlamaConfig, LlamaForCausalLM

from bench_train import run_baseline, run_peftbench, synchronize, with_lora
from report_file import header, write
from peftbench.config import ModelConfig
from peftbench.cost.measure import PeakMemory
from peftbench.models import load_tokenizer
from peftbench.tasks.base import Example
from peftbench.train.data import encode_examples
from peftbench.train.liger import liger_installed

ONE_B = {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
         "num_key_value_heads": 4, "vocab_size": 32000, "max_position_embeddings": 4096}


def build_base(tokenizer) -> LlamaForCausalLM:
    config = LlamaConfig(**ONE_B, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.bos_token_id)
    torch.manual_seed(0)
    with torch.device("cuda"):  # initialised on the GPU: seconds, not a minute on the CPU
        return LlamaForCausalLM(config)


def long_examples(count: int, prompt_chars: int, answer_chars: int) -> list[Example]:
    rng = random.Random(0)
    letters = string.ascii_lowercase + " "
    text = lambda n: "".join(rng.choice(letters) for _ in range(n))  # noqa: E731
    return [Example(prompt=text(prompt_chars), answer=text(answer_chars)) for _ in range(count)]


def parameters_per_token(model) -> tuple[int, int]:
    """(matmul parameters a token passes through: every linear layer and the LM head, the
    embedding table excluded, a lookup), and the attention term's L x d."""
    config = model.config
    body = sum(p.numel() for name, p in model.named_parameters() if p.ndim == 2 and "embed_tokens" not in name)
    return body, config.num_hidden_layers * config.hidden_size


def matmul_tflops(size: int = 8192, reps: int = 10) -> float:
    a, b = (torch.randn(size, size, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(reps):
        start.record()
        a @ b
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return 2 * size**3 / statistics.median(times) / 1e12


def executed_flops_per_token(side, base, tokenizer, examples, args) -> float:
    """FLOPs of one real training step of this side, counted by torch, per real token."""
    one = argparse.Namespace(**{**vars(args), "steps": 1})
    model = side["model"](base)
    with FlopCounterMode(display=False) as counter:
        figures = side["run"](model, tokenizer, examples[: args.batch_size], one)
    del model
    return counter.get_total_flops() / figures["tokens"]


def side_table() -> dict:
    """Every side by name; `chosen` picks the ones a run measures."""

    def lora_on(dtype):
        return lambda base: with_lora(copy.deepcopy(base).to(dtype))

    table = {
        "baseline_trainer_bf16": {"model": lora_on(torch.float32),
                                  "run": lambda m, t, e, a: run_baseline(m, t, e, a, bf16=True)},
        "peftbench_bf16_autocast": {"model": lora_on(torch.float32),
                                    "run": lambda m, t, e, a: run_peftbench(m, t, e, a, "packed", False, "bf16")},
        "peftbench_bf16_weights": {"model": lora_on(torch.bfloat16),
                                   "run": lambda m, t, e, a: run_peftbench(m, t, e, a, "packed", False, "bf16")},
    }
    if liger_installed():
        table["peftbench_bf16_weights_liger"] = {
            "model": lora_on(torch.bfloat16),
            "run": lambda m, t, e, a: run_peftbench(m, t, e, a, "packed", False, "bf16", liger=True)}
    # opt-in extras (--sides): torch.compile, and flex attention for the packed block-diagonal mask
    extras = {"compile": {"compile": True}, "flex": {"attention": "flex_attention"},
              "liger_flex": {"liger": True, "attention": "flex_attention"}}
    for name, speedups in extras.items():
        table[f"peftbench_bf16_weights_{name}"] = {
            "model": lora_on(torch.bfloat16), "flops_as": "peftbench_bf16_weights",
            "run": lambda m, t, e, a, speedups=speedups: run_peftbench(m, t, e, a, "packed", False, "bf16", **speedups)}
    return table


def chosen(table: dict, names) -> dict:
    """`names`, or by default every side but the opt-in extras (which name their FLOP twin)."""
    return {name: side for name, side in table.items() if (name in names if names else "flops_as" not in side)}


def profile(side, base, tokenizer, examples, args) -> str:
    """The CUDA kernels of `args.steps` training steps (after two untimed ones), by total time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    measure(side, base, tokenizer, examples[: 2 * args.batch_size], argparse.Namespace(**{**vars(args), "steps": 2}))
    model = side["model"](base)
    with profiler(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        side["run"](model, tokenizer, examples, args)
        synchronize()
    return prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=30, max_name_column_width=70)


def measure(side, base, tokenizer, examples, args) -> dict:
    model = side["model"](base)
    gc.collect()
    torch.cuda.empty_cache()
    synchronize()
    with PeakMemory(torch.device("cuda")) as memory:
        figures = side["run"](model, tokenizer, examples, args)
    figures["tokens_per_s"] = figures["tokens"] / figures["seconds"]
    figures["peak_cuda_allocated_bytes"] = memory.peak_bytes
    del model
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--prompt-chars", type=int, default=128)
    parser.add_argument("--answer-chars", type=int, default=2300)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, default=989.4, help="the GPU's dense bf16 peak (H100 SXM)")
    parser.add_argument("--sides", nargs="*", default=None,
                        help="default: the baseline and peftbench with and without Liger; also: "
                        "peftbench_bf16_weights_{compile,flex,liger_flex} (liger with compile fails: config.py)")
    parser.add_argument("--profile", default=None, metavar="SIDE",
                        help="print the CUDA kernel table of --steps steps of this side instead")
    parser.add_argument("--work", default="/tmp/peftbench-bench-mfu")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_mfu.py needs a CUDA GPU")
    args.device, args.max_length = "cuda", args.prompt_chars + args.answer_chars + 8
    tokenizer = load_tokenizer(ModelConfig(name="micro"))
    base = build_base(tokenizer)
    examples = long_examples(args.steps * args.batch_size, args.prompt_chars, args.answer_chars)
    matmul = matmul_tflops()
    body, attention = parameters_per_token(base)
    seq = statistics.mean(len(e.input_ids) for e in encode_examples(tokenizer, examples, args.max_length))
    model_flops = {"6n": 6 * body + 12 * attention * seq, "lora": 4 * body + 12 * attention * seq}
    print(f"{sum(p.numel() for p in base.parameters()) / 1e9:.2f}B parameters ({body / 1e9:.2f}B in matmuls); "
          f"{seq:.0f} tokens per example; bf16 matmul {matmul:.0f} TFLOP/s")

    every = side_table()
    if args.profile:
        print(profile(every[args.profile], base, tokenizer, examples, args))
        return
    table = chosen(every, args.sides)
    warm = argparse.Namespace(**{**vars(args), "steps": 2})
    executed = {}
    for name, side in table.items():  # untimed warm-up, then one step under the FLOP counter
        measure(side, base, tokenizer, examples[: 2 * args.batch_size], warm)
        # compiled code and flex attention's kernels are beyond the counter: their plain twin
        # executes the same matmuls
        executed[name] = executed_flops_per_token(every[side.get("flops_as", name)], base, tokenizer, examples, args)
    runs: dict[str, list[dict]] = {name: [] for name in table}
    for rep in range(args.reps):
        for name in (list(table) if rep % 2 == 0 else list(reversed(table))):
            figures = measure(table[name], base, tokenizer, examples, args)
            runs[name].append(figures)
            print(f"rep {rep} {name:30s} {figures['tokens_per_s']:9.0f} tok/s  {figures['seconds']:6.2f} s  "
                  f"peak {figures['peak_cuda_allocated_bytes'] / 2**30:.1f} GiB  loss {figures['mean_loss']:.3f}")

    rate = {name: statistics.median(r["tokens_per_s"] for r in runs[name]) for name in table}
    peak = args.peak_tflops * 1e12
    figures = {name: {"tokens_per_s": rate[name], "mfu_6n": rate[name] * model_flops["6n"] / peak,
                      "mfu_lora": rate[name] * model_flops["lora"] / peak, "hfu": rate[name] * executed[name] / peak,
                      "executed_flops_per_token": executed[name]} for name in table}
    base_rate = rate.get("baseline_trainer_bf16")
    report = {**header("bench_mfu", args, left_out=("out", "work")), "model": ONE_B,
              "parameters": sum(p.numel() for p in base.parameters()), "matmul_parameters": body,
              "tokens_per_example": seq, "model_flops_per_token": model_flops, "peak_tflops": args.peak_tflops,
              "measured_bf16_matmul_tflops": matmul, "figures": figures,
              "ratio_vs_baseline": {n: rate[n] / base_rate for n in table} if base_rate else None, "runs": runs}
    print(f"{'side':30s} {'tok/s':>9s} {'MFU 6N':>7s} {'MFU LoRA':>8s} {'HFU':>6s}  vs baseline")
    for name, f in figures.items():
        ratio = f"x{rate[name] / base_rate:.2f}" if base_rate else ""
        print(f"{name:30s} {f['tokens_per_s']:9.0f} {f['mfu_6n']:7.1%} {f['mfu_lora']:8.1%} {f['hfu']:6.1%}  {ratio}")
    Path(args.work).mkdir(parents=True, exist_ok=True)
    write(report, args.out)


if __name__ == "__main__":
    main()
