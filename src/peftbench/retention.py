"""Retention: how much general ability a tuned model kept.

A run with a `retention:` block scores its tuned model on general-ability suites (the
micro world's general skills; BBH, IFEval, NQ for real models, as PEFT-Arena does) and
compares with the base model, scored once per (model, suites, eval config) and cached
beside the suite's runs. Besides the suites' own scores it records the cheap forgetting
proxy of huggingface/peft's method comparison: the change in mean per-token
cross-entropy of the suites' reference answers between base and tuned model.
"""

from __future__ import annotations

from pathlib import Path

from peftbench.config import EvalConfig, ModelConfig, RetentionConfig
from peftbench.identity import retention_key
from peftbench.evaluate import evaluate_task
from peftbench.evaluate.batch_size import scoring_rows
from peftbench.evaluate.vllm_backend import hf_model_of, plain_weights, scoring_model
from peftbench.io import atomic_write_json, file_lock, read_json
from peftbench.train.data import encode_examples
from peftbench.train.sft import validation_loss

MAX_LENGTH = 512


def _examples(task_cfg, retention: RetentionConfig):
    from peftbench.tasks.select import eval_examples, resolve_task

    task = resolve_task(task_cfg)
    if not (task_cfg.max_eval or task.max_eval):
        task_cfg = task_cfg.model_copy(update={"max_eval": retention.max_eval})
    return task, eval_examples(task, task_cfg)


def score_retention(model, tokenizer, retention: RetentionConfig, eval_cfg: EvalConfig,
                    show_progress: bool = False) -> dict:
    """Score a model on every retention task: scores, their mean, and answer cross-entropy."""
    scores, losses = {}, {}
    hf_model = hf_model_of(model)  # the answer losses are transformers' whatever generates
    for task_cfg in retention.tasks:
        task, examples = _examples(task_cfg, retention)
        scores[task.name] = evaluate_task(model, tokenizer, task, examples, eval_cfg, show_progress)["score"]
        encoded = encode_examples(tokenizer, examples, MAX_LENGTH)
        rows = scoring_rows(hf_model, eval_cfg, max(len(e.input_ids) for e in encoded))
        losses[task.name] = validation_loss(hf_model, tokenizer, encoded, rows)
    return {"scores": scores, "average": general_score(scores),
            "cross_entropy": sum(losses.values()) / len(losses)}


def family(task: str) -> str:
    """The task group a task belongs to (bbh_date_understanding -> bbh), else the task."""
    from peftbench.tasks import TASK_GROUPS

    return next((group for group, members in TASK_GROUPS.items() if task in members), task)


def general_score(scores: dict[str, float]) -> float:
    """Mean over families of each family's mean: PEFT-Arena's general score for
    [bbh, ifeval, nq] is (BBH mean + IFEval + NQ) / 3, not a mean over 29 tasks; the micro
    world's general skills form one family, so theirs is the plain mean."""
    families: dict[str, list[float]] = {}
    for task, score in scores.items():
        families.setdefault(family(task), []).append(score)
    return sum(sum(v) / len(v) for v in families.values()) / len(families)


def _base_path(output_dir: str, suite: str, model_cfg: ModelConfig, retention: RetentionConfig,
               eval_cfg: EvalConfig) -> Path:
    return Path(output_dir) / suite / "retention-base" / f"{retention_key(model_cfg, retention, eval_cfg)}.json"


def base_retention(output_dir: str, suite: str, model_cfg: ModelConfig, retention: RetentionConfig,
                   eval_cfg: EvalConfig, show_progress: bool = False) -> dict:
    """The base model's retention scores, computed once and cached on disk."""
    path = _base_path(output_dir, suite, model_cfg, retention, eval_cfg)
    if path.is_file():
        return read_json(path)
    from peftbench.models import load_model, load_tokenizer

    with file_lock(path.with_name(f".{path.name}.lock")):  # another `peftbench run` of the suite may be on it
        if path.is_file():
            return read_json(path)
        tokenizer = load_tokenizer(model_cfg)
        with scoring_model(eval_cfg, load_model(model_cfg), tokenizer, weights=plain_weights(model_cfg)) as model:
            scores = score_retention(model, tokenizer, retention, eval_cfg, show_progress)
        atomic_write_json(path, scores)
    return scores


def compare(base: dict, tuned: dict) -> dict:
    """Retention of a tuned model against its base: forgetting in points (positive = lost)."""
    return {
        "base": base, "tuned": tuned,
        "forgetting_points": 100 * (base["average"] - tuned["average"]),
        "per_task_change_points": {t: 100 * (tuned["scores"][t] - base["scores"][t]) for t in base["scores"]},
        "cross_entropy_change": tuned["cross_entropy"] - base["cross_entropy"],
    }

