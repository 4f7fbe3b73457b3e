"""Equal tuning budget: the same number of hyper-parameter trials for every method.

A comparison where LoRA was tuned and the others ran on defaults says little. With a
suite's `tuning` block, each (method, task) first gets `trials` trial runs, points of
its search space trained on train and scored on the validation split (never test);
the best point then runs every seed and is scored on test. Trials are ordinary runs
(same store, resumable) in the `<suite>.trials` folder; the choice, with every trial's
score, is written to `tuning.json` beside the suite's runs.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Any

from peftbench.config import MethodConfig, RunConfig, SuiteConfig, TuningConfig
from peftbench.errors import ConfigError


@dataclass(frozen=True)
class Trial:
    method_index: int  # which entry of suite.methods
    task: str
    point: dict[str, Any]
    run: RunConfig


def method_space(tuning: TuningConfig, method: MethodConfig) -> dict[str, list[Any]]:
    return {**tuning.space, **tuning.methods.get(method.name, {})}


def trial_points(tuning: TuningConfig, method: MethodConfig, where: str = "tuning") -> list[dict[str, Any]]:
    """The method's `trials` points: the whole grid, or a seeded sample of it."""
    space = method_space(tuning, method)
    grid = [dict(zip(space, values)) for values in itertools.product(*space.values())]
    if tuning.sampler == "grid" and len(grid) != tuning.trials:
        raise ConfigError([(f"{where}.space", f"the grid for {method.name!r} has {len(grid)} points but trials is "
                            f"{tuning.trials}: every method gets the same budget (use sampler: random to sample)")])
    if len(grid) < tuning.trials:
        raise ConfigError([(f"{where}.space", f"the space for {method.name!r} has {len(grid)} points, fewer than "
                            f"trials={tuning.trials}: give it more values so every method gets the same budget")])
    if tuning.sampler == "random":
        grid = random.Random(f"{tuning.seed}/{method.name}").sample(grid, tuning.trials)
    return grid


def with_point(method: MethodConfig, point: dict[str, Any]) -> MethodConfig:
    return MethodConfig(**{**method.model_dump(), **point})


def trials(suite: SuiteConfig) -> list[Trial]:
    assert suite.tuning is not None
    out = []
    for i, method in enumerate(suite.methods):
        for point in trial_points(suite.tuning, method, "tuning"):
            for task in suite.tasks:
                on_validation = task.model_copy(update={"eval_split": "validation"})
                run = suite.run_for(with_point(method, point), on_validation, suite.seeds[0], suite=f"{suite.name}.trials")
                out.append(Trial(i, task.name, point, run))
    return out


def trial_score(metrics: dict | None) -> float:
    """The trial's validation score; a failed or diverged trial never wins."""
    if not metrics or metrics.get("status") != "done":
        return -math.inf
    return float(metrics["eval"]["score"])


def choose(suite: SuiteConfig, done: list[Trial], metrics_of) -> tuple[list[RunConfig], list[dict]]:
    """The final runs (best point per method and task, every seed) and the record of the choice."""
    runs, record = [], []
    for i, method in enumerate(suite.methods):
        for task in suite.tasks:
            mine = [t for t in done if t.method_index == i and t.task == task.name]
            scored = [(trial_score(metrics_of(t.run)), t) for t in mine]
            best_score, best = max(scored, key=lambda pair: pair[0])  # first on ties: sampling order
            record.append({
                "method": method.name, "method_index": i, "task": task.name, "best": best.point,
                "best_validation_score": None if math.isinf(best_score) else best_score,
                "trials": [{"point": t.point, "validation_score": None if math.isinf(s) else s} for s, t in scored],
            })
            runs += [suite.run_for(with_point(method, best.point), task, seed) for seed in suite.seeds]
    return runs, record


def final_run_template(suite: SuiteConfig) -> list[RunConfig]:
    """For --dry-run: the final runs with each method's first trial point (the real point is
    known only after the trials)."""
    if not suite.tuning:
        return suite.expand()
    return [suite.run_for(with_point(m, trial_points(suite.tuning, m)[0]), task, seed)
            for m in suite.methods for task in suite.tasks for seed in suite.seeds]

