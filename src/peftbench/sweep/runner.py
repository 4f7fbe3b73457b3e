"""Run a suite: the base model once per task, then every run of the grid.

Resumable: a run whose `metrics.json` exists is never redone; the store's `running`
rows whose process died are reset and run again (up to `max_attempts`). A run that
raises is recorded as failed with its reason, and the sweep goes on.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Optional

from rich.console import Console

from peftbench.config import RunConfig, SuiteConfig, to_plain
from peftbench.io import atomic_write_json, read_json
from peftbench.run import (METRICS_FILE, execute_base_eval, execute_run, method_label, require_sandbox_for, run_dir,
                           run_id)
from peftbench.sweep import tuning
from peftbench.sweep.executors import EXECUTORS, ExecutorOptions
from peftbench.sweep.store import FINAL, STORE_FILE, ResultStore


def store_for(suite: SuiteConfig) -> ResultStore:
    return ResultStore(Path(suite.output_dir) / suite.name / STORE_FILE)


def _register(store: ResultStore, cfg: RunConfig) -> None:
    store.register(run_id(cfg), cfg.suite, method_label(cfg), cfg.task.name, cfg.train.seed, to_plain(cfg))


def _sync_from_disk(store: ResultStore, cfg: RunConfig) -> None:
    """A run finished on disk but not in the store (killed between the two): record it."""
    metrics_path = run_dir(cfg) / METRICS_FILE
    row = store.get(run_id(cfg))
    if metrics_path.is_file() and row and row["status"] not in FINAL:
        metrics = read_json(metrics_path)
        store.finish(run_id(cfg), metrics["status"], metrics)


def _record_failure(cfg: RunConfig, exc: BaseException) -> dict:
    metrics = {
        "run_id": run_id(cfg), "suite": cfg.suite, "method": method_label(cfg), "task": cfg.task.name,
        "model": cfg.model.name, "seed": cfg.train.seed, "status": "failed",
        "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
    }
    # failure.json, not metrics.json: a failed run is tried again by the next sweep
    atomic_write_json(run_dir(cfg) / "failure.json", metrics)
    return metrics


def execute_tracked(cfg: RunConfig, store: ResultStore, show_progress: bool) -> Optional[dict]:
    """Claim, run and record one run; None if another process holds it or it is finished."""
    if not store.claim(run_id(cfg)):
        return None
    try:
        metrics = execute_run(cfg, show_progress)
    except Exception as exc:  # one broken run must not sink the grid
        metrics = _record_failure(cfg, exc)
        store.finish(run_id(cfg), "failed", metrics, error=metrics["error"])
        return metrics
    store.finish(run_id(cfg), metrics["status"], metrics)
    return metrics


def _runnable(store: ResultStore, runs: list[RunConfig], max_attempts: int) -> list[RunConfig]:
    ready = []
    for cfg in runs:
        row = store.get(run_id(cfg))
        if row["status"] in FINAL or row["status"] == "running":
            continue
        if row["status"] == "interrupted" and row["attempts"] >= max_attempts:
            store.finish(run_id(cfg), "failed", error=f"interrupted {row['attempts']} times (process killed)")
            continue
        if row["status"] == "failed" and row["attempts"] >= max_attempts:
            continue
        ready.append(cfg)
    return ready


def _execute_all(runs: list[RunConfig], store: ResultStore, execute, options, console: Console,
                 max_attempts: int) -> None:
    """Register the runs and execute what is not finished, retrying killed ones."""
    for cfg in runs:
        _register(store, cfg)
        _sync_from_disk(store, cfg)
    while pending := _runnable(store, runs, max_attempts):
        console.print(f"{len(pending)} of {len(runs)} runs to do")
        execute(pending, store.path, options, console)
        for stale in store.reconcile():  # a worker killed mid-run: its run goes back in the queue
            console.print(f"[yellow]retrying[/] {stale}: its worker died mid-run")
        if all(store.get(run_id(c))["status"] == "failed" for c in pending):
            break  # everything left failed; the next sweep retries it


def _result(store: ResultStore, cfg: RunConfig) -> dict:
    row = store.get(run_id(cfg))
    return row["metrics"] or {"run_id": run_id(cfg), "status": row["status"], "method": method_label(cfg),
                              "task": cfg.task.name}


def _tune(suite: SuiteConfig, execute, options, console: Console, max_attempts: int) -> list[RunConfig]:
    """Run every method's trials on validation; return the final runs at the chosen points."""
    planned = tuning.trials(suite)
    console.print(f"[bold]tuning[/]: {suite.tuning.trials} trials per method and task ({len(planned)} runs, "
                  "scored on validation)")
    store = ResultStore(Path(suite.output_dir) / f"{suite.name}.trials" / STORE_FILE)
    for stale in store.reconcile():
        console.print(f"[yellow]resuming[/] {stale}: its process died mid-run")
    _execute_all([t.run for t in planned], store, execute, options, console, max_attempts)
    runs, record = tuning.choose(suite, planned, lambda cfg: _result(store, cfg))
    atomic_write_json(Path(suite.output_dir) / suite.name / "tuning.json", record)
    for choice in record:
        console.print(f"  {choice['method']} on {choice['task']}: {choice['best']} "
                      f"(validation {choice['best_validation_score']})")
    return runs


def run_suite(suite: SuiteConfig, show_progress: bool = True, console: Console | None = None,
              max_attempts: int = 2, executor: str = "local", options: ExecutorOptions | None = None) -> list[dict]:
    console = console or Console(stderr=True)
    options = options or ExecutorOptions(show_progress=show_progress)
    execute = EXECUTORS.get(executor)
    require_sandbox_for([t.name for t in suite.tasks] + [t.name for t in (suite.retention.tasks if suite.retention else [])])
    store = store_for(suite)
    for stale in store.reconcile():
        console.print(f"[yellow]resuming[/] {stale}: its process died mid-run")
    results = []
    for task in suite.tasks:
        console.print(f"[bold]base model[/] on {task.name}")
        results.append(execute_base_eval(suite.output_dir, suite.name, suite.model, task, suite.eval, show_progress))
    if suite.retention:  # once, before the workers start, so they all read the cache
        from peftbench.retention import base_retention

        console.print(f"[bold]base model[/] on the retention suite ({len(suite.retention.tasks)} tasks)")
        base_retention(suite.output_dir, suite.name, suite.model, suite.retention, suite.eval, show_progress)
    runs = _tune(suite, execute, options, console, max_attempts) if suite.tuning else suite.expand()
    _execute_all(runs, store, execute, options, console, max_attempts)
    finished = [_result(store, cfg) for cfg in runs]
    if suite.analysis:
        from peftbench.analysis.of_run import analyze_finished

        done = [run_dir(cfg) for cfg, result in zip(runs, finished) if (result or {}).get("status") == "done"]
        analyze_finished(done, suite.analysis, suite.retention, console, show_progress)
    return results + finished


def load_results(root: str | Path) -> list[dict]:
    """Every finished result (metrics.json) under a folder, failures included."""
    root = Path(root)
    found = [read_json(p) for p in sorted(root.rglob(METRICS_FILE))]
    found += [read_json(p) for p in sorted(root.rglob("failure.json")) if not (p.parent / METRICS_FILE).exists()]
    return found
