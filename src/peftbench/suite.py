"""Run a suite: the base model once per task, then every run of the grid, in order.

Runs already finished on disk are skipped, so re-running a suite after a crash picks up
where it stopped. A run that raises is recorded as failed and the suite goes on.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from rich.console import Console

from peftbench.config import SuiteConfig
from peftbench.io import atomic_write_json
from peftbench.run import METRICS_FILE, execute_base_eval, execute_run, method_label, run_dir, run_id


def run_suite(suite: SuiteConfig, show_progress: bool = True, console: Console | None = None) -> list[dict]:
    console = console or Console(stderr=True)
    results = []
    for task in suite.tasks:
        console.print(f"[bold]base model[/] on {task.name}")
        results.append(execute_base_eval(suite.output_dir, suite.name, suite.model, task, suite.eval, show_progress))
    runs = suite.expand()
    for i, cfg in enumerate(runs, 1):
        console.print(f"[bold]run {i}/{len(runs)}[/] {run_id(cfg)}")
        try:
            results.append(execute_run(cfg, show_progress))
        except Exception as exc:  # one broken run must not sink the grid
            results.append(_record_failure(cfg, exc))
            console.print(f"[red]run {run_id(cfg)} failed:[/] {exc}")
    return results


def _record_failure(cfg, exc: Exception) -> dict:
    metrics = {
        "run_id": run_id(cfg), "suite": cfg.suite, "method": method_label(cfg), "task": cfg.task.name,
        "model": cfg.model.name, "seed": cfg.train.seed, "status": "failed",
        "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
    }
    out: Path = run_dir(cfg)
    # Written as failure.json, not metrics.json: a failed run is retried next time.
    atomic_write_json(out / "failure.json", metrics)
    return metrics


def load_results(root: str | Path) -> list[dict]:
    """Every finished result (metrics.json) under a folder, failures included."""
    from peftbench.io import read_json

    root = Path(root)
    found = [read_json(p) for p in sorted(root.rglob(METRICS_FILE))]
    found += [read_json(p) for p in sorted(root.rglob("failure.json")) if not (p.parent / METRICS_FILE).exists()]
    return found
