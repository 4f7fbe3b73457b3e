"""What a result is the result of: a run's id, the base model's cache keys, and the versions
written beside every result.

A run's id hashes its resolved config (less what changes only where it is written, how fast
it runs or how it is logged), the fingerprint of every task it touches (version and spec
digest: a fixed template or extractor is a new task, so a stale score is never served), and
the results format. No exceptions are kept for ids of earlier versions: this is 0.1.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Optional

RESULTS_FORMAT = 2  # bump when what a run writes, or how it scores, changes for every task

# training settings that change how fast a run goes and how much memory it takes, not what it
# optimises (packed batches give the same loss: tested), and where its log goes
NOT_RESULTS = ("batching", "gradient_checkpointing", "compile", "attention", "liger", "report_to", "checkpoint_every")


def digest(value: Any, size: int = 10) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:size]


def task_fingerprints(task_cfgs) -> dict[str, dict]:
    """name -> {version, digest} of every registered task named (transfer and retention included)."""
    from peftbench.tasks import TASKS

    return {t.name: TASKS.get(t.name).fingerprint for t in task_cfgs if t.name in TASKS}


def run_tasks(cfg) -> list:
    return [cfg.task, *(cfg.task.transfer or []), *(cfg.retention.tasks if cfg.retention else [])]


def run_identity(cfg) -> dict:
    from peftbench.config import to_plain

    plain = to_plain(cfg)
    plain.pop("output_dir", None)
    for setting in NOT_RESULTS:
        plain["train"].pop(setting, None)
    if plain["train"].get("mode") != "grpo":
        plain["train"].pop("grpo", None)  # RL settings do not touch a supervised run
    plain["eval"].pop("vllm_args", None)  # engine settings: speed and memory only
    return {"config": plain, "tasks": task_fingerprints(run_tasks(cfg)), "results_format": RESULTS_FORMAT}


def run_hash(cfg) -> str:
    return digest(run_identity(cfg))


def base_eval_key(model_cfg, task_cfg, eval_cfg) -> str:
    """The base model's score on a task: cached per model, task (settings and fingerprint) and eval settings."""
    from peftbench.config import to_plain

    task = to_plain(task_cfg.model_copy(update={"transfer": None}))  # the base here, whatever it transfers to
    evaluation = to_plain(eval_cfg)
    evaluation.pop("vllm_args", None)
    return digest([to_plain(model_cfg), task, task_fingerprints([task_cfg]), evaluation, RESULTS_FORMAT])


def retention_key(model_cfg, retention_cfg, eval_cfg) -> str:
    from peftbench.config import to_plain

    evaluation = to_plain(eval_cfg)
    evaluation.pop("vllm_args", None)
    return digest([to_plain(model_cfg), to_plain(retention_cfg), task_fingerprints(retention_cfg.tasks), evaluation,
                   RESULTS_FORMAT], size=12)


def versions() -> dict[str, Optional[str]]:
    """The versions a result depends on, written into every metrics.json."""
    from peftbench.provenance import package_versions

    found = package_versions()
    return {"results_format": RESULTS_FORMAT, **{k: found.get(k) for k in ("peftbench", "transformers", "peft", "torch")}}
