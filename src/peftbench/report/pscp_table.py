"""PEFT-Bench's method-level PSCP table: each method's score and costs averaged over the tasks
(and within each task category), then PSCP of those averages, as the paper computes it (not
the mean of per-run PSCPs). The betas are settable: the paper's table uses 1, its final
script 2. Also reads the paper's own published averages, to reproduce its table."""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Optional, Sequence

from peftbench.cost.pscp import PscpConstants, pscp

CATEGORIES = (("code", "code"), ("math", "math"))  # (tag, category); everything else: NLU & reasoning
OTHER = "nlu & reasoning"


@dataclass(frozen=True)
class MethodCost:
    method: str
    category: str  # "all" or a task category
    tasks: int
    score: float  # mean primary score, 0-100
    trainable_params: float
    extra_tflops: float
    memory_gb: float  # peak training memory (peak allocated on CUDA)

    def pscp(self, constants: PscpConstants) -> float:
        return pscp(self.score, self.trainable_params, self.extra_tflops, self.memory_gb, constants)


def category(task: str) -> str:
    from peftbench.tasks import TASKS

    tags = set(TASKS.get(task).tags) if task in TASKS else set()
    return next((name for tag, name in CATEGORIES if tag in tags), OTHER)


def _per_task(results: Sequence[dict]) -> dict[tuple[str, str], dict]:
    """(method, task) -> mean over seeds of score and costs."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for run in results:
        cost = run.get("cost") or {}
        if run.get("status") == "done" and run.get("method") != "base" and cost.get("peak_memory_bytes"):
            groups[(run["method"], run["task"])].append(run)
    return {key: {"score": mean(100 * r["eval"]["score"] for r in runs),
                  "params": mean(r["cost"]["trainable_params"] for r in runs),
                  "tflops": mean(r["cost"].get("extra_inference_tflops", 0.0) for r in runs),
                  "memory": mean(r["cost"]["peak_memory_bytes"] / 1e9 for r in runs)} for key, runs in groups.items()}


def method_costs(results: Sequence[dict]) -> list[MethodCost]:
    """Per method: averages over all its tasks, then over each category's tasks."""
    per_task = _per_task(results)
    out = []
    for method in sorted({m for m, _ in per_task}):
        tasks = {t: v for (m, t), v in per_task.items() if m == method}
        for name in ["all", *sorted({category(t) for t in tasks})]:
            chosen = [v for t, v in tasks.items() if name == "all" or category(t) == name]
            out.append(MethodCost(method, name, len(chosen), mean(v["score"] for v in chosen),
                                  mean(v["params"] for v in chosen), mean(v["tflops"] for v in chosen),
                                  mean(v["memory"] for v in chosen)))
    return out


def published_costs(path: str | Path) -> list[MethodCost]:
    """A CSV of a paper's averages: method, score, trainable_params, extra_tflops, memory_gb."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    return [MethodCost(r["method"], "all", 0, float(r["score"]), float(r["trainable_params"]),
                       float(r["extra_tflops"]), float(r["memory_gb"])) for r in rows]


def pscp_rows(costs: Sequence[MethodCost], beta: Optional[float] = None) -> list[list[str]]:
    """[category, method, tasks, score, trainable, extra TFLOPs, memory GB, PSCP] rows, best PSCP first
    within each category; `beta` sets all three exponents (default: the paper's table's, 1)."""
    constants = PscpConstants() if beta is None else PscpConstants(b_params=beta, b_flops=beta, b_memory=beta)
    ranked = sorted(costs, key=lambda c: (c.category != "all", c.category, -c.pscp(constants)))
    return [[c.category, c.method, str(c.tasks or "-"), f"{c.score:.2f}", f"{c.trainable_params:,.0f}",
             f"{c.extra_tflops:.3g}", f"{c.memory_gb:.2f}", f"{c.pscp(constants):.2f}"] for c in ranked]


PSCP_COLUMNS = ("tasks of", "method", "tasks", "score", "trainable", "extra TFLOPs", "peak mem GB", "PSCP")


def pscp_note(beta: Optional[float]) -> str:
    b = 1 if beta is None else beta
    return (f"PSCP of each method's averages over its tasks (PEFT-Bench's way), betas {b:g}; peak memory is peak "
            "allocated on CUDA (as the paper measures it), peak resident memory on CPU.")
