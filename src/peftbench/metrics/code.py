"""Functional correctness of generated code: run it against tests in the sandbox."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from math import comb
from queue import Queue
from typing import Mapping, Sequence, Union

from peftbench.metrics import METRICS, check_lengths
from peftbench.metrics.sandbox import ExecutionResult, SandboxLimits, run_program
from peftbench.metrics.sandbox_server import SandboxServer, server_supported


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of Chen et al. (2021): 1 - C(n-c, k) / C(n, k) for n samples, c correct."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


# Runs an APPS-style program once per test case with the case's stdin, comparing stdout
# (whitespace-insensitive, as the APPS harness does); call-based cases call `fn_name`.
_STDIO_HARNESS = """
import io, sys, contextlib
_SOURCE = {source!r}
_CASES = {cases!r}
for _i, (_stdin, _expected) in enumerate(zip(_CASES["inputs"], _CASES["outputs"])):
    if _CASES.get("fn_name"):
        _scope = {{}}
        exec(compile(_SOURCE, "solution.py", "exec"), _scope)
        _fn = _scope.get(_CASES["fn_name"]) or getattr(_scope["Solution"](), _CASES["fn_name"])
        _got = _fn(*_stdin)
        _ok = _got == _expected or [_got] == _expected
    else:
        _out = io.StringIO()
        sys.stdin = io.StringIO(_stdin if isinstance(_stdin, str) else "\\n".join(map(str, _stdin)))
        with contextlib.redirect_stdout(_out):
            exec(compile(_SOURCE, "solution.py", "exec"), {{"__name__": "__main__"}})
        _want = _expected if isinstance(_expected, str) else "\\n".join(map(str, _expected))
        _ok = _out.getvalue().split() == _want.split()
    assert _ok, f"test case {{_i}} failed"
"""


def test_program(program: str, reference: Union[str, Mapping]) -> str:
    """The file the sandbox runs. A reference is the tests (micro-code, MBPP), or
    {"prefix", "tests"} where the model continues a given prefix (HumanEval's prompt: a
    body and a full re-definition both work after it), or {"stdio": cases} (APPS)."""
    if isinstance(reference, str):
        return f"{program}\n\n{reference}\n"
    if "stdio" in reference:
        return _STDIO_HARNESS.format(source=program, cases=reference["stdio"])
    return f"{reference['prefix']}{program}\n\n{reference['tests']}\n"


def check_programs(programs: Sequence[str], tests: Sequence, limits: SandboxLimits = SandboxLimits(),
                   workers: int = 4) -> list[ExecutionResult]:
    """Each program followed by its tests, run in the sandbox: `workers` warm sandbox servers
    in parallel, each forking a fresh sandboxed child per program (a one-shot interpreter
    per program where the platform cannot run the server)."""
    jobs = [test_program(program, test) for program, test in zip(programs, tests)]
    with ExitStack() as stack:
        if server_supported():
            servers: Queue = Queue()
            for _ in range(min(workers, len(jobs))):
                servers.put(stack.enter_context(SandboxServer(limits)))

            def run(job: str) -> ExecutionResult:
                server = servers.get()  # one job at a time per server
                try:
                    return server.run(job)
                finally:
                    servers.put(server)
        else:
            def run(job: str) -> ExecutionResult:
                return run_program(job, limits)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(run, jobs))


def _samples(prediction: Union[str, Sequence[str]]) -> list[str]:
    return [prediction] if isinstance(prediction, str) else list(prediction)


def pass_at_k_metric(k: int):
    """pass@k over n samples per problem (a prediction may be a list of n samples)."""

    def metric(predictions: Sequence, references: Sequence) -> float:
        check_lengths(predictions, references)
        samples = [_samples(p) for p in predictions]
        too_few = [i for i, s in enumerate(samples) if len(s) < k]
        if too_few:
            raise ValueError(f"pass@{k} needs at least {k} samples per problem; problem {too_few[0]} has "
                             f"{len(samples[too_few[0]])} (set eval.num_samples >= {k} with sampling)")
        flat = [(program, ref) for group, ref in zip(samples, references) for program in group]
        results = iter(check_programs([p for p, _ in flat], [r for _, r in flat]))
        scores = [pass_at_k(len(group), sum(next(results).passed for _ in group), k) for group in samples]
        return sum(scores) / len(scores) if scores else 0.0

    return metric


for _k in (1, 5, 10):
    METRICS.register(f"pass@{_k}", pass_at_k_metric(_k))


@METRICS.decorator("codebleu")
def codebleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """CodeBLEU (Ren et al. 2020) for Python, as the `codebleu` package computes it: the
    metric PEFT-Bench reports for CoNaLa, CodeAlpaca-py and APPS."""
    from codebleu import calc_codebleu

    check_lengths(predictions, references)
    return float(calc_codebleu(list(references), list(predictions), lang="python")["codebleu"])
