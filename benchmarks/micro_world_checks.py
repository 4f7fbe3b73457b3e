"""Measure the micro world's acceptance figures (run by hand; writes JSON).

    python benchmarks/micro_world_checks.py --out benchmarks/results/micro_world_checks.json

1. LoRA SFT on micro-math: test exact match before and after, and training time.
2. Forgetting: full fine-tuning and LoRA on a target task (default micro-nli), epoch by
   epoch and per seed: target score and the general-skills average after each epoch (the
   retention suite), and both at the epoch where the target peaks.
3. Sentiment transfer: LoRA and full fine-tuning trained on one-sentence reviews, scored on one-sentence
   (in-distribution) and long (transfer) reviews.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from transformers import set_seed

from peftbench.config import EvalConfig, ModelConfig, TrainConfig
from peftbench.evaluate import evaluate_task
from peftbench.methods import METHODS, MethodContext
from peftbench.models import load_model, load_tokenizer
from peftbench.tasks import TASKS
from peftbench.tasks.micro import GENERAL_TASKS
from peftbench.train import train_sft

MODEL = ModelConfig(name="micro", device="cpu")
EVAL = EvalConfig(batch_size=64, max_new_tokens=24)


def score(model, tokenizer, name: str, n: int, split: str | None = None) -> float:
    task = TASKS.get(name)
    examples = task.examples(split or task.eval_split, n, seed=0)
    return evaluate_task(model, tokenizer, task, examples, EVAL, show_progress=False)["score"]


def general_average(model, tokenizer, n: int) -> float:
    return sum(score(model, tokenizer, t, n) for t in GENERAL_TASKS) / len(GENERAL_TASKS)


def attach(method_name: str, params: dict, total_steps: int, seed: int = 0):
    set_seed(seed)
    method = METHODS.get(method_name)
    model = method.attach(load_model(MODEL), method.params(params), MethodContext(total_steps=total_steps))
    return model


def lora_on_math(args) -> dict:
    tokenizer = load_tokenizer(MODEL)
    base = score(load_model(MODEL), tokenizer, "micro-math", 200)
    cfg = TrainConfig(epochs=args.math_epochs, lr=args.math_lr, batch_size=16, lr_scheduler="linear", warmup_ratio=0.05)
    train = TASKS.get("micro-math").examples("train")
    model = attach("lora", {"target_modules": "all-linear", "r": args.math_rank, "alpha": 2 * args.math_rank}, 10_000)
    result = train_sft(model, tokenizer, train, cfg, show_progress=False)
    tuned = score(model, tokenizer, "micro-math", 200)
    return {"base_em": base, "lora_em": tuned, "gain_points": 100 * (tuned - base), "train_seconds": result.seconds,
            "steps": result.steps}


def forgetting(args, method_name: str, params: dict, lr: float, seed: int) -> dict:
    tokenizer = load_tokenizer(MODEL)
    task = args.forgetting_task
    train = TASKS.get(task).examples("train", args.forgetting_train)
    model = attach(method_name, params, 10_000, seed)
    points = [{"epoch": 0, "target": score(model, tokenizer, task, 200),
               "general": general_average(model, tokenizer, args.general_samples)}]
    for epoch in range(1, args.forgetting_epochs + 1):
        cfg = TrainConfig(epochs=1, lr=lr, batch_size=16, lr_scheduler="constant", seed=1000 * seed + epoch)
        train_sft(model, tokenizer, train, cfg, show_progress=False)
        points.append({"epoch": epoch, "target": score(model, tokenizer, task, 200),
                       "general": general_average(model, tokenizer, args.general_samples)})
        print(method_name, f"seed {seed}", points[-1], flush=True)
    peak = max(points, key=lambda p: p["target"])
    return {"task": task, "lr": lr, "seed": seed, "trajectory": points, "peak_epoch": peak["epoch"],
            "target_gain_at_peak_points": 100 * (peak["target"] - points[0]["target"]),
            "general_drop_at_peak_points": 100 * (points[0]["general"] - peak["general"])}


def transfer(args) -> dict:
    """In-distribution (one-sentence) vs transfer (long reviews) accuracy, per method."""
    tokenizer = load_tokenizer(MODEL)
    train = TASKS.get("micro-sentiment").examples("train")
    results = {}
    for name, params, lr in (("lora", {"target_modules": "all-linear"}, args.transfer_lora_lr), ("full", {}, args.full_lr)):
        model = attach(name, params, 10_000)
        train_sft(model, tokenizer, train, TrainConfig(epochs=args.transfer_epochs, lr=lr, batch_size=16),
                  show_progress=False)
        in_dist = score(model, tokenizer, "micro-sentiment", 200)
        long = score(model, tokenizer, "micro-sentiment-transfer", 200)
        results[name] = {"in_distribution": in_dist, "transfer": long, "gap_points": 100 * (in_dist - long)}
        print(name, results[name], flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="benchmarks/results/micro_world_checks.json")
    parser.add_argument("--lora-lr", type=float, default=5e-4, help="forgetting check")
    parser.add_argument("--transfer-lora-lr", type=float, default=2e-3)
    parser.add_argument("--full-lr", type=float, default=3e-4)
    parser.add_argument("--lora-targets", default="all-linear", help="all-linear or a comma list (forgetting check)")
    parser.add_argument("--lora-rank", type=int, default=16, help="LoRA rank (forgetting check)")
    parser.add_argument("--skip-full", action="store_true", help="forgetting check: LoRA only")
    parser.add_argument("--math-epochs", type=int, default=6)
    parser.add_argument("--math-lr", type=float, default=3e-3)
    parser.add_argument("--math-rank", type=int, default=16)
    parser.add_argument("--forgetting-task", default="micro-nli")
    parser.add_argument("--forgetting-train", type=int, default=1000)
    parser.add_argument("--forgetting-epochs", type=int, default=4)
    parser.add_argument("--general-samples", type=int, default=100)
    parser.add_argument("--transfer-epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="forgetting check: one trajectory per seed (adapter init and data order)")
    parser.add_argument("--only", choices=["math", "forgetting", "transfer"], default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    results: dict = {"model": MODEL.name}
    if args.only in (None, "math"):
        results["lora_on_math"] = lora_on_math(args)
        print(results["lora_on_math"], flush=True)
    if args.only in (None, "transfer"):
        results["sentiment_transfer"] = transfer(args)
        print(results["sentiment_transfer"], flush=True)
    if args.only in (None, "forgetting"):
        targets = args.lora_targets if args.lora_targets == "all-linear" else args.lora_targets.split(",")
        runs = [(name, seed) for seed in args.seeds for name in (("lora",) if args.skip_full else ("full", "lora"))]
        results["forgetting"] = [
            {"method": name, **(forgetting(args, "full", {}, args.full_lr, seed) if name == "full" else
                                forgetting(args, "lora", {"target_modules": targets, "r": args.lora_rank}, args.lora_lr,
                                           seed))}
            for name, seed in runs]
        for row in results["forgetting"]:
            print(f"{row['method']:5s} seed {row['seed']}: target +{row['target_gain_at_peak_points']:.1f} points at its "
                  f"peak (epoch {row['peak_epoch']}), general-skills average -{row['general_drop_at_peak_points']:.1f}")
    results["wall_seconds"] = time.perf_counter() - start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
