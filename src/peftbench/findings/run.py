"""Run the experiments the chosen claims need, then judge each claim on their results."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from rich.console import Console

from peftbench.errors import PeftbenchError
from peftbench.findings.claims import CLAIMS, Verdict

REAL_SUITE = "real-sentiment"  # claim 12 compares the micro world with this suite's results


def findings_config(name: str) -> Path:
    from importlib import resources

    return Path(str(resources.files("peftbench") / "configs" / "findings" / f"{name}.yaml"))


def _suite(name: str, model: Optional[str], output_dir: str, overrides: Sequence[str] = ()):
    from peftbench.validate import load_suite_config

    fixed = [f"output_dir={output_dir}"] + ([f"model.name={model}"] if model else [])
    return load_suite_config(findings_config(name), fixed + list(overrides))


def _results_of(suite_dir: Path, run_ids: Optional[set] = None) -> list[dict]:
    from peftbench.rundir import load_runs

    if not suite_dir.is_dir():
        return []
    return [r for r in load_runs(suite_dir) if run_ids is None or r.get("run_id") in run_ids]


def run_findings(claims: Sequence[int], model: Optional[str] = None, output_dir: str = "runs",
                 console: Optional[Console] = None, show_progress: bool = True, executor_options=None,
                 overrides: Sequence[str] = ()) -> tuple[list[Verdict], dict[str, list[dict]]]:
    """Run (or resume) every experiment the claims need; return the verdicts and the results."""
    from peftbench.sweep import run_suite

    console = console or Console(stderr=True)
    unknown = [c for c in claims if str(c) not in CLAIMS]
    if unknown:
        raise PeftbenchError(f"unknown claim(s) {unknown}; the claims are {', '.join(CLAIMS.names())}")
    needed = sorted({e for c in claims for e in CLAIMS.get(str(c)).experiments})
    experiments: dict[str, list[dict]] = {}
    for name in needed:
        if name == "real":  # the real-model suite is run on its own (30 minutes on 2 cores); read if there
            experiments[name] = _results_of(Path(output_dir) / REAL_SUITE)
            continue
        suite = _suite(name, model, output_dir, overrides)
        console.print(f"[bold]findings experiment[/] {name}: {len(suite.expand())} runs -> "
                      f"{Path(suite.output_dir) / suite.name}")
        results = run_suite(suite, show_progress=show_progress, console=console, options=executor_options)
        experiments[name] = _results_of(Path(suite.output_dir) / suite.name, {r.get("run_id") for r in results})
    return [CLAIMS.get(str(c)).judge(experiments) for c in claims], experiments
