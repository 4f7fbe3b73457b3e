"""Functional correctness of generated code: run it against tests in the sandbox."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from math import comb
from typing import Sequence

from peftbench.metrics import METRICS
from peftbench.metrics.sandbox import ExecutionResult, SandboxLimits, run_program


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of Chen et al. (2021): 1 - C(n-c, k) / C(n, k) for n samples, c correct."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def check_programs(programs: Sequence[str], tests: Sequence[str], limits: SandboxLimits = SandboxLimits(),
                   workers: int = 4) -> list[ExecutionResult]:
    """Each program followed by its tests, run in the sandbox (in parallel processes)."""
    jobs = [f"{program}\n\n{test}\n" for program, test in zip(programs, tests)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: run_program(job, limits), jobs))


@METRICS.decorator("pass@1")
def pass_at_1(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of programs passing their tests (one sample each: pass@1). References are tests."""
    results = check_programs(predictions, references)
    return sum(r.passed for r in results) / len(results) if results else 0.0
