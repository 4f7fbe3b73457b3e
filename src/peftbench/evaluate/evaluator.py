"""Score a model on a task: the same code for an untouched base model and a tuned one."""

from __future__ import annotations

import time
from typing import Optional, Sequence

import torch

from peftbench.config import EvalConfig
from peftbench.errors import PeftbenchError
from peftbench.evaluate.batch_size import scoring_rows
from peftbench.evaluate.generation import generate
from peftbench.evaluate.loglik import choose, shares_context
from peftbench.models.position_mask import selects_positions
from peftbench.evaluate.vllm_backend import VllmModel, backend_of, hf_model_of
from peftbench.metrics import Score, compares_with_target, get_metric
from peftbench.metrics.classification import invalid_as_wrong
from peftbench.prompting import encode_answer, encode_prompt
from peftbench.tasks.base import Example, Task


def context_length(model) -> Optional[int]:
    """How many positions the model attends over (None if its config does not say)."""
    config = getattr(hf_model_of(model), "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def fit_to_context(task: Task, prompts: list[list[int]], room: Optional[int]) -> tuple[list[list[int]], int]:
    """Prompts cut from the left to `room` tokens (the end, where the question is, stays, as
    lm-evaluation-harness cuts), and how many were cut; a task whose rule is `refuse`
    raises instead. A prompt beyond the model's context would otherwise be scored on
    positions the model never learned, or allocate its attention for as long as it is."""
    if room is None:
        return prompts, 0
    if room < 1:
        raise PeftbenchError(f"task {task.name!r}: no room for a prompt in the model's context once the answer's "
                             "tokens are reserved; lower max_new_tokens")
    long = [len(p) for p in prompts if len(p) > room]
    if long and task.long_prompts == "refuse":
        raise PeftbenchError(f"task {task.name!r}: {len(long)} prompts are longer than the {room} tokens the model's "
                             f"context leaves them (the longest has {max(long)}), and the task refuses to cut them "
                             "(long_prompts: refuse); drop those examples or use a model with a longer context")
    return [p[-room:] if len(p) > room else p for p in prompts], len(long)


def _predict_generate(model, tokenizer, task: Task, examples, cfg: EvalConfig, show_progress: bool):
    """One completion per prompt, or `num_samples` of them (a list per example, for pass@k)."""
    n = cfg.num_samples
    if task.max_new_tokens:
        cfg = cfg.model_copy(update={"max_new_tokens": task.max_new_tokens})
    window = context_length(model)
    prompts, cut = fit_to_context(task, [encode_prompt(tokenizer, e.prompt) for e in examples],
                                  None if window is None else window - cfg.max_new_tokens)
    prompts = [p for p in prompts for _ in range(n)]
    if isinstance(model, VllmModel):  # eval.backend: vllm
        raw = model.generate(tokenizer, prompts, cfg, show_progress)
    else:
        raw = generate(model, tokenizer, prompts, cfg, show_progress, complete=task.extraction_complete)
    predictions = [task.extract(text) for text in raw]
    if n == 1:
        return predictions, raw, cut
    grouped = lambda xs: [xs[i : i + n] for i in range(0, len(xs), n)]  # noqa: E731
    return grouped(predictions), grouped(raw), cut


def grade(name: str, predictions: list, references: list):
    """The metric over the predictions. With several samples per prompt, pass@k sees them
    all; any other metric is avg@n, PEFT-Arena's protocol (16 samples at temperature 0.6): the
    metric of each sample index, averaged, item scores included."""
    metric = get_metric(name)
    if not predictions or not isinstance(predictions[0], list) or name.startswith("pass@"):
        return metric(predictions, references)
    n = min(map(len, predictions))
    per_sample = [metric([p[j] for p in predictions], references) for j in range(n)]
    items = [getattr(s, "details", {}).get("per_item") for s in per_sample]
    per_item = [sum(col) / n for col in zip(*items)] if all(i is not None for i in items) else None
    return Score(sum(map(float, per_sample)) / n, {"avg_of": n, **({"per_item": per_item} if per_item else {})})


def _predict_loglik(model, tokenizer, task: Task, examples, cfg: EvalConfig, show_progress: bool):
    model = hf_model_of(model)  # choices are scored by transformers whatever generates
    missing = [i for i, e in enumerate(examples) if not e.choices]
    if missing:
        raise ValueError(f"task {task.name!r} scores by log-likelihood but example {missing[0]} has no choices")
    choices = [[encode_answer(tokenizer, c, with_eos=False) for c in e.choices] for e in examples]
    window = context_length(model)
    longest = max(len(c) for options in choices for c in options)
    contexts, cut = fit_to_context(task, [encode_prompt(tokenizer, e.prompt) for e in examples],
                                   None if window is None else window - longest)
    width = max(len(c) + max(map(len, options)) for c, options in zip(contexts, choices))
    longest_choice = max(len(c) for options in choices for c in options)
    rows = scoring_rows(model, cfg, width, sequences_per_row=max(map(len, choices)),  # one per choice
                        logit_positions=longest_choice if shares_context(model) or selects_positions(model) else None)
    picks = choose(model, tokenizer, contexts, choices, rows, show_progress)
    predictions = [e.choices[i] for e, i in zip(examples, picks)]
    return predictions, predictions, cut


_PREDICTORS = {"generate": _predict_generate, "loglik": _predict_loglik}


def _invalid_answers(task: Task, predictions: list, references: list, cfg: EvalConfig) -> tuple[Optional[int], list]:
    """(how many answers fall outside the task's labels, the predictions to grade): with
    eval.invalid_answers: wrong, those answers are replaced by a wrong label (PEFT-Bench)."""
    if not task.labels or not predictions or not isinstance(predictions[0], str):
        return None, predictions
    fixed, replaced = invalid_as_wrong(predictions, references, task.labels)
    return replaced, (fixed if cfg.invalid_answers == "wrong" else predictions)


def evaluate_task(
    model, tokenizer, task: Task, examples: Sequence[Example], cfg: EvalConfig, show_progress: bool = True
) -> dict:
    """Metrics plus per-example records (prompt, reference, raw output, prediction)."""
    if not examples:
        raise PeftbenchError(f"task {task.name!r}: no evaluation examples")
    start = time.perf_counter()
    device = next(hf_model_of(model).parameters()).device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
        predictions, raw, cut = _PREDICTORS[task.scoring](model, tokenizer, task, examples, cfg, show_progress)
    seconds = time.perf_counter() - start
    references = [e.grading_reference for e in examples]
    invalid, graded_predictions = _invalid_answers(task, predictions, references, cfg)
    targets = [e.answer for e in examples]  # text overlap compares with the target text, not the unit tests
    graded = {name: grade(name, graded_predictions, targets if compares_with_target(name) else references)
              for name in task.metrics}
    records = [
        {"prompt": e.prompt, "reference": e.answer, "output": o, "prediction": p}
        for e, o, p in zip(examples, raw, predictions)
    ]
    details = {name: dict(score.details) for name, score in graded.items() if isinstance(score, Score)}
    per_item = {name: found.pop("per_item", None) for name, found in details.items()}
    for name, found in details.items():  # each example's verdicts beside its prediction
        for record, verdict in zip(records, found.pop("per_example", [])):
            record.setdefault("grading", {})[name] = verdict
    details = {name: found for name, found in details.items() if found}
    scores = {name: float(score) for name, score in graded.items()}
    item_scores = per_item.get(task.primary_metric)
    return {
        "scores": scores,
        **({"grading": details} if details else {}),
        # the primary metric item by item (when it is a mean over items): lets a difference
        # against the base be tested on the same items, not only across seeds
        **({"item_scores": item_scores} if item_scores is not None and len(item_scores) == len(examples) else {}),
        "primary_metric": task.primary_metric,
        "scoring": task.scoring,
        "score": scores[task.primary_metric],
        "samples": len(examples),
        "prompts_cut_to_context": cut,
        **({"invalid_answers": invalid} if invalid is not None else {}),
        "seconds": seconds,
        "samples_per_s": len(examples) / seconds if seconds else None,
        "backend": backend_of(model) if task.scoring == "generate" else "transformers",
        "records": records,
    }
