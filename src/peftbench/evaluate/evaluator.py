"""Score a model on a task: the same code for an untouched base model and a tuned one."""

from __future__ import annotations

import time
from typing import Sequence

from peftbench.config import EvalConfig
from peftbench.evaluate.batch_size import scoring_rows
from peftbench.evaluate.generation import generate
from peftbench.evaluate.loglik import choose
from peftbench.evaluate.vllm_backend import VllmModel, backend_of, hf_model_of
from peftbench.metrics import Score, get_metric
from peftbench.prompting import encode_answer, encode_prompt
from peftbench.tasks.base import Example, Task


def _predict_generate(model, tokenizer, task: Task, examples, cfg: EvalConfig, show_progress: bool):
    """One completion per prompt, or `num_samples` of them (a list per example, for pass@k)."""
    n = cfg.num_samples
    if task.max_new_tokens:
        cfg = cfg.model_copy(update={"max_new_tokens": task.max_new_tokens})
    prompts = [encode_prompt(tokenizer, e.prompt) for e in examples for _ in range(n)]
    if isinstance(model, VllmModel):  # eval.backend: vllm
        raw = model.generate(tokenizer, prompts, cfg, show_progress)
    else:
        raw = generate(model, tokenizer, prompts, cfg, show_progress, complete=task.extraction_complete)
    predictions = [task.extract(text) for text in raw]
    if n == 1:
        return predictions, raw
    grouped = lambda xs: [xs[i : i + n] for i in range(0, len(xs), n)]  # noqa: E731
    return grouped(predictions), grouped(raw)


def _for_metric(name: str, predictions: list) -> list:
    """Sample-aware metrics (pass@k) get every sample; the others grade the first one."""
    if not predictions or not isinstance(predictions[0], list) or name.startswith("pass@"):
        return predictions
    return [p[0] for p in predictions]


def _predict_loglik(model, tokenizer, task: Task, examples, cfg: EvalConfig, show_progress: bool):
    model = hf_model_of(model)  # choices are scored by transformers whatever generates
    missing = [i for i, e in enumerate(examples) if not e.choices]
    if missing:
        raise ValueError(f"task {task.name!r} scores by log-likelihood but example {missing[0]} has no choices")
    contexts = [encode_prompt(tokenizer, e.prompt) for e in examples]
    choices = [[encode_answer(tokenizer, c, with_eos=False) for c in e.choices] for e in examples]
    width = max(len(c) + max(map(len, options)) for c, options in zip(contexts, choices))
    rows = scoring_rows(model, cfg, width, sequences_per_row=max(map(len, choices)))  # one per choice
    picks = choose(model, tokenizer, contexts, choices, rows, show_progress)
    predictions = [e.choices[i] for e, i in zip(examples, picks)]
    return predictions, predictions


_PREDICTORS = {"generate": _predict_generate, "loglik": _predict_loglik}


def evaluate_task(
    model, tokenizer, task: Task, examples: Sequence[Example], cfg: EvalConfig, show_progress: bool = True
) -> dict:
    """Metrics plus per-example records (prompt, reference, raw output, prediction)."""
    if not examples:
        raise ValueError(f"task {task.name!r}: no evaluation examples")
    start = time.perf_counter()
    predictions, raw = _PREDICTORS[task.scoring](model, tokenizer, task, examples, cfg, show_progress)
    seconds = time.perf_counter() - start
    references = [e.grading_reference for e in examples]
    graded = {name: get_metric(name)(_for_metric(name, predictions), references) for name in task.metrics}
    records = [
        {"prompt": e.prompt, "reference": e.answer, "output": o, "prediction": p}
        for e, o, p in zip(examples, raw, predictions)
    ]
    details = {name: score.details for name, score in graded.items() if isinstance(score, Score)}
    for name, found in details.items():  # each example's verdicts beside its prediction
        for record, verdict in zip(records, found.pop("per_example", [])):
            record.setdefault("grading", {})[name] = verdict
    scores = {name: float(score) for name, score in graded.items()}
    return {
        "scores": scores,
        **({"grading": details} if details else {}),
        "primary_metric": task.primary_metric,
        "score": scores[task.primary_metric],
        "samples": len(examples),
        "seconds": seconds,
        "samples_per_s": len(examples) / seconds if seconds else None,
        "backend": backend_of(model) if task.scoring == "generate" else "transformers",
        "records": records,
    }
