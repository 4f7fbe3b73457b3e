"""Scoring long prompts: IMDB reviews on SmolLM2-135M, peftbench against a plain batched loop.

    python benchmarks/bench_long_prompts.py --reviews ../shared/data/imdb/test_sample.jsonl \
        --out benchmarks/results/bench_long_prompts_smollm2.json

Both scorings a sentiment task can use, each against the loop a user would write:
- generation (PEFT-Bench's way): `model.generate` on batches of 16 reviews in file order,
  left-padded, 4 new tokens; peftbench's batched decoding (longest first, rows dropped when
  their answer is final). The label extracted from each must be the same on both sides.
- log-likelihood of " negative" / " positive" (lm-evaluation-harness's way): every
  (review, label) pair as a whole sequence, right-padded batches of 8 in file order; peftbench
  (each review run once, longest first, logits only where a token is scored), in float32 and
  under bf16 autocast (eval.precision: bf16; picks may differ where the labels nearly tie,
  counted). The float32 picks must be the same on both sides.
Prompts are plain text (model.chat_template: false), as real-sentiment scores them.
"""

from __future__ import annotations

import argparse
import time

import torch

from report_file import header, write
from peftbench.config import EvalConfig, ModelConfig, TaskConfig
from peftbench.evaluate import evaluate_task
from peftbench.models import load_model, load_tokenizer
from peftbench.prompting import encode_answer, encode_prompt
from peftbench.run import eval_examples, resolve_task


def plain_generate(model, tokenizer, examples, task, batch_size=16, new_tokens=4):
    predictions = []
    tokenizer.padding_side = "left"
    for start in range(0, len(examples), batch_size):
        prompts = [encode_prompt(tokenizer, e.prompt) for e in examples[start : start + batch_size]]
        width = max(map(len, prompts))
        ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        predictions += [task.extract(tokenizer.decode(row[width:], skip_special_tokens=True)) for row in out]
    return predictions


def plain_loglik(model, tokenizer, examples, batch_size=8):
    pairs = [(encode_prompt(tokenizer, e.prompt), encode_answer(tokenizer, c, with_eos=False))
             for e in examples for c in e.choices]
    scores = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        width = max(len(a) + len(b) for a, b in chunk)
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id)
        mask = torch.zeros_like(ids)
        for row, (ctx, cont) in enumerate(chunk):
            ids[row, : len(ctx) + len(cont)] = torch.tensor(ctx + cont)
            mask[row, : len(ctx) + len(cont)] = 1
        with torch.inference_mode():
            logprobs = model(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1)
        for row, (ctx, cont) in enumerate(chunk):
            scores.append(sum(float(logprobs[row, len(ctx) - 1 + i, t]) for i, t in enumerate(cont)))
    return [e.choices[max(range(2), key=lambda i, n=2 * k: scores[n + i])] for k, e in enumerate(examples)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", required=True, help="IMDB rows in the hub's schema (text, label)")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    model_cfg = ModelConfig(name="smollm2-135m", device="cpu", chat_template=False)
    model, tokenizer = load_model(model_cfg), load_tokenizer(model_cfg)
    task_cfg = TaskConfig(name="imdb", max_eval=args.count, data_files={"test": args.reviews})
    generating = resolve_task(task_cfg)
    examples = eval_examples(generating, task_cfg)
    scoring = generating.scored_by("loglik")
    sides = {
        "plain_generate_loop": lambda: plain_generate(model, tokenizer, examples, generating),
        "peftbench_generate": lambda: [r["prediction"] for r in evaluate_task(
            model, tokenizer, generating, examples, EvalConfig(batch_size="auto", max_new_tokens=4), False)["records"]],
        "plain_loglik_loop": lambda: plain_loglik(model, tokenizer, examples),
        "peftbench_loglik": lambda: [r["prediction"] for r in evaluate_task(
            model, tokenizer, scoring, examples, EvalConfig(batch_size="auto"), False)["records"]],
        "peftbench_loglik_bf16": lambda: [r["prediction"] for r in evaluate_task(
            model, tokenizer, scoring, examples, EvalConfig(batch_size="auto", precision="bf16"), False)["records"]],
    }
    seconds, predictions = {}, {}
    for side, run in sides.items():
        start = time.perf_counter()
        predictions[side] = run()
        seconds[side] = time.perf_counter() - start
        print(f"{side:24s} {seconds[side]:7.1f} s  {len(examples) / seconds[side]:.2f} reviews/s", flush=True)
    lengths = sorted(len(encode_prompt(tokenizer, e.prompt)) for e in examples)
    differ = lambda a, b: sum(x != y for x, y in zip(predictions[a], predictions[b]))  # noqa: E731
    gold = [e.answer for e in examples]
    report = header("bench_long_prompts", args) | {
        "model": "smollm2-135m", "reviews": len(examples), "prompt_tokens": {"median": lengths[len(lengths) // 2],
                                                                              "max": lengths[-1]},
        "seconds": seconds, "reviews_per_s": {s: len(examples) / v for s, v in seconds.items()},
        "speedup": {"generate": seconds["plain_generate_loop"] / seconds["peftbench_generate"],
                    "loglik": seconds["plain_loglik_loop"] / seconds["peftbench_loglik"],
                    "loglik_bf16": seconds["plain_loglik_loop"] / seconds["peftbench_loglik_bf16"],
                    "loglik_bf16_vs_plain_generate": seconds["plain_generate_loop"] / seconds["peftbench_loglik_bf16"]},
        "predictions_differing": {"generate": differ("plain_generate_loop", "peftbench_generate"),
                                  "loglik": differ("plain_loglik_loop", "peftbench_loglik"),
                                  "loglik_bf16_vs_fp32": differ("peftbench_loglik", "peftbench_loglik_bf16")},
        "accuracy": {s: sum(p.strip() == g.strip() for p, g in zip(v, gold)) / len(gold) for s, v in predictions.items()},
    }
    print(report["speedup"], report["predictions_differing"], report["accuracy"])
    write(report, args.out)


if __name__ == "__main__":
    main()
