"""Run a suite: the base model once per task, then every run of the grid.

Resumable, and safe to run twice at once: a run whose `metrics.json` exists is never
redone; a run whose process was killed (`interrupted`) is run again by the next start,
however often that happened before; a run that raised (`failed`) keeps its reason and is
retried only when asked (`--retry-failed`). Runs another live `peftbench run` of the
suite is doing are waited for, not started twice; the base model's evaluations are
locked so that two starts compute each once.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from rich.console import Console

from peftbench.config import RunConfig, SuiteConfig, to_plain
from peftbench.errors import PeftbenchError
from peftbench.io import atomic_write_json, read_json, remove_stale_temporaries
from peftbench.rundir import METRICS_FILE
from peftbench.run import execute_base_eval, method_label, preflight, run_dir, run_id
from peftbench.sweep import tuning
from peftbench.sweep.executors import EXECUTORS, ExecutorOptions
from peftbench.sweep.store import FINAL, STORE_FILE, ResultStore
from peftbench.sweep.worker import execute_tracked  # noqa: F401  (the executors' unit of work)


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


def _runnable(store: ResultStore, runs: list[RunConfig], interrupted_here: Counter, max_attempts: int,
              retry_failed: bool, tried_here: set) -> list[RunConfig]:
    """Runs to start now. A run killed `max_attempts` times within this start is left for the
    next start (a run that kills its worker every time must not loop forever); a failed run
    is retried once per start with `retry_failed`."""
    ready = []
    for cfg in runs:
        row = store.get(run_id(cfg))
        status = row["status"]
        if status in FINAL or status == "running":
            continue
        if status == "interrupted" and interrupted_here[run_id(cfg)] >= max_attempts:
            continue
        if status == "failed" and (not retry_failed or run_id(cfg) in tried_here):
            continue
        ready.append(cfg)
    return ready


def _attempts(store: ResultStore, runs: list[RunConfig]) -> int:
    """How many times the runs were started, all told (each claim counts one)."""
    return sum(store.get(run_id(cfg))["attempts"] for cfg in runs)


def _running_elsewhere(store: ResultStore, runs: list[RunConfig]) -> list[dict]:
    """Rows of `runs` that another live process holds (another `peftbench run` of the suite)."""
    ids = {run_id(cfg) for cfg in runs}
    return [row for row in store.rows("running") if row["run_id"] in ids]


def _execute_all(runs: list[RunConfig], store: ResultStore, execute, options, console: Console,
                 max_attempts: int, retry_failed: bool = False, poll_s: float = 2.0) -> None:
    """Register the runs and execute what is not finished, retrying killed ones, and wait for
    the ones another process is running."""
    for cfg in runs:
        _register(store, cfg)
        _sync_from_disk(store, cfg)
    interrupted_here: Counter = Counter()
    tried_here: set = set()
    waiting_said = False
    while True:
        for stale in store.reconcile():  # a worker (or another sweep) killed mid-run: its run goes back in the queue
            interrupted_here[stale] += 1
            console.print(f"[yellow]retrying[/] {stale}: its process died mid-run")
        pending = _runnable(store, runs, interrupted_here, max_attempts, retry_failed, tried_here)
        if pending:
            console.print(f"{len(pending)} of {len(runs)} runs to do")
            tried_here.update(run_id(cfg) for cfg in pending)
            before = _attempts(store, pending)
            execute(pending, store.path, options, console)
            if _attempts(store, pending) == before:
                # every worker died before it could claim a run (an import error, a task or model
                # registered only in the parent process): starting them again would do the same
                raise PeftbenchError(f"the workers exited without starting any of the {len(pending)} runs; their "
                                     "error is printed above (run with --workers 1 to see it in this process)")
            continue
        elsewhere = _running_elsewhere(store, runs)
        if not elsewhere:
            break
        if not waiting_said:
            holders = sorted({f"{row['host']}:{row['pid']}" for row in elsewhere})
            console.print(f"waiting for {len(elsewhere)} runs that another peftbench process ({', '.join(holders)}) "
                          "is doing")
            waiting_said = True
        time.sleep(poll_s)
    _say_what_is_left(store, runs, console, interrupted_here)


def _say_what_is_left(store: ResultStore, runs: list[RunConfig], console: Console, interrupted_here: Counter) -> None:
    rows = [store.get(run_id(cfg)) for cfg in runs]
    failed = [r for r in rows if r["status"] == "failed"]
    killed = [r for r in rows if r["status"] == "interrupted"]
    if failed:
        console.print(f"[red]{len(failed)} runs failed[/] (reasons in the store and each run's failure.json); "
                      "fix the cause and run again with --retry-failed")
    if killed:
        console.print(f"[yellow]{len(killed)} runs were killed {max(interrupted_here.values())} times in a row[/] "
                      "(out of memory?); run again to retry them")


def _result(store: ResultStore, cfg: RunConfig) -> dict:
    row = store.get(run_id(cfg))
    return row["metrics"] or {"run_id": run_id(cfg), "status": row["status"], "method": method_label(cfg),
                              "task": cfg.task.name}


def _tune(suite: SuiteConfig, execute, options, console: Console, max_attempts: int,
          retry_failed: bool = False) -> list[RunConfig]:
    """Run every method's trials on validation; return the final runs at the chosen points."""
    planned = tuning.trials(suite)
    console.print(f"[bold]tuning[/]: {suite.tuning.trials} trials per method and task ({len(planned)} runs, "
                  "scored on validation)")
    store = ResultStore(Path(suite.output_dir) / f"{suite.name}.trials" / STORE_FILE)
    _execute_all([t.run for t in planned], store, execute, options, console, max_attempts, retry_failed)
    runs, record = tuning.choose(suite, planned, lambda cfg: _result(store, cfg))
    atomic_write_json(Path(suite.output_dir) / suite.name / "tuning.json", record)
    for choice in record:
        console.print(f"  {choice['method']} on {choice['task']}: {choice['best']} "
                      f"(validation {choice['best_validation_score']})")
    return runs


def _other_scorings(task_cfg) -> list[str]:
    """The scorings a task allows besides the one the suite uses: an instruction-tuned model
    that answers in a sentence scores near 0 by generation and well by log-likelihood, so a
    base score under one alone would misstate what fine-tuning added."""
    from peftbench.tasks.select import resolve_task

    task = resolve_task(task_cfg)
    return [s for s in task.scorings if s != task.scoring]


def run_suite(suite: SuiteConfig, show_progress: bool = True, console: Console | None = None,
              max_attempts: int = 2, executor: str = "local", options: ExecutorOptions | None = None,
              retry_failed: bool = False) -> list[dict]:
    console = console or Console(stderr=True)
    options = options or ExecutorOptions(show_progress=show_progress)
    execute = EXECUTORS.get(executor)
    preflight(suite.model, suite.tasks, suite.retention, need_validation=suite.train.select_best or bool(suite.tuning))
    for leftover in remove_stale_temporaries(Path(suite.output_dir) / suite.name):
        console.print(f"removed {leftover.name}: an unfinished write of a process that was killed")
    store = store_for(suite)
    results = []
    for task in [t for main in suite.tasks for t in [main, *(main.transfer or [])]]:
        console.print(f"[bold]base model[/] on {task.name}")
        results.append(execute_base_eval(suite.output_dir, suite.name, suite.model, task, suite.eval, show_progress))
        for other in _other_scorings(task):  # the base under both scorings, where a task allows both
            results.append(execute_base_eval(suite.output_dir, suite.name, suite.model,
                                             task.model_copy(update={"scoring": other}), suite.eval, show_progress))
    if suite.retention:  # once, before the workers start, so they all read the cache
        from peftbench.retention import base_retention

        console.print(f"[bold]base model[/] on the retention suite ({len(suite.retention.tasks)} tasks)")
        base_retention(suite.output_dir, suite.name, suite.model, suite.retention, suite.eval, show_progress)
    runs = _tune(suite, execute, options, console, max_attempts, retry_failed) if suite.tuning else suite.expand()
    _execute_all(runs, store, execute, options, console, max_attempts, retry_failed)
    finished = [_result(store, cfg) for cfg in runs]
    if suite.analysis:
        from peftbench.analysis.of_run import analyze_finished

        done = [run_dir(cfg) for cfg, result in zip(runs, finished) if (result or {}).get("status") == "done"]
        analyze_finished(done, suite.analysis, suite.retention, console, show_progress)
    return results + finished
