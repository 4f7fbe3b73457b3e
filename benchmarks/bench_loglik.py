"""Log-likelihood scoring: one forward pass per context against one per (context, choice).

    python benchmarks/bench_loglik.py --out benchmarks/results/bench_loglik_micro.json
    python benchmarks/bench_loglik.py --few-shot 4 --out benchmarks/results/bench_loglik_micro_4shot.json

Multiple-choice tasks (MMLU, HellaSwag, BoolQ, the micro classification tasks) score each
choice by the log-probability of its tokens after the question. The plain recipe (and
peftbench before this change) runs the whole sequence, context plus choice, once per
choice. peftbench now runs each context once, copies its KV cache to one row per choice,
and computes logits only where a token is scored; a prefix every context of a batch shares
(few-shot examples, `--few-shot`) runs once. Both sides run in one process on the
same model and questions, alternating, several repetitions, with `eval.batch_size: auto`;
the picks must be identical (checked, and written to the JSON).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import peftbench.evaluate.loglik as loglik
from report_file import add_allocator_option, apply_allocator, header, write
from peftbench.config import EvalConfig, ModelConfig, TaskConfig
from peftbench.evaluate import evaluate_task
from peftbench.models import load_model, load_tokenizer
from peftbench.run import resolve_task

SIDES = {"whole_sequences": False, "peftbench_shared_context": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="micro")
    parser.add_argument("--tasks", nargs="+", default=["micro-sentiment-transfer", "micro-med", "micro-nli",
                                                        "micro-sentiment"])
    parser.add_argument("--per-task", type=int, default=100)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", default=None)
    parser.add_argument("--few-shot", type=int, default=None, help="k solved examples before every question (task.few_shot)")
    add_allocator_option(parser)
    args = parser.parse_args()
    apply_allocator(args)
    model_cfg = ModelConfig(name=args.model, device="cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer = load_model(model_cfg), load_tokenizer(model_cfg)
    cfg = EvalConfig(batch_size="auto")
    results = {}
    for name in args.tasks:
        task = resolve_task(TaskConfig(name=name, few_shot=args.few_shot))
        examples = task.examples(task.eval_split, limit=args.per_task, seed=0)
        seconds: dict[str, list[float]] = {side: [] for side in SIDES}
        picks = {}
        for rep in range(args.reps + 1):  # repetition 0 is an untimed warm-up
            for side in (list(SIDES) if rep % 2 == 0 else list(reversed(SIDES))):
                loglik.shares_context = lambda model, shared=SIDES[side]: shared
                start = time.perf_counter()
                records = evaluate_task(model, tokenizer, task, examples, cfg, show_progress=False)["records"]
                if rep:
                    seconds[side].append(time.perf_counter() - start)
                picks[side] = [r["prediction"] for r in records]
        median = {side: statistics.median(s) for side, s in seconds.items()}
        whole, shared = median["whole_sequences"], median["peftbench_shared_context"]
        results[name] = {
            "questions": len(examples), "choices_per_question": len(examples[0].choices),
            "median_seconds": median, "samples_per_s": {s: len(examples) / t for s, t in median.items()},
            "ratio": whole / shared, "identical_picks": picks["whole_sequences"] == picks["peftbench_shared_context"],
            "seconds": seconds,
        }
        print(f"{name:26s} whole {whole:.3f} s  shared {shared:.3f} s  x{whole / shared:.2f}  "
              f"identical picks: {results[name]['identical_picks']}")
    report = {**header("bench_loglik", args), "tasks": results}
    write(report, args.out)


if __name__ == "__main__":
    main()
