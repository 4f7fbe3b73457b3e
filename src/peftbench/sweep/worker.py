"""One run of a sweep, as every executor does it: claim it in the store, run it, record the
result (or the failure, with its reason and traceback)."""

from __future__ import annotations

import traceback
from typing import Optional

from peftbench.allocator import release_freed_memory
from peftbench.config import RunConfig
from peftbench.io import atomic_write_json
from peftbench.run import execute_run, method_label, run_dir, run_id
from peftbench.rundir import FAILURE_FILE
from peftbench.sweep.store import ResultStore


def _record_failure(cfg: RunConfig, exc: BaseException) -> dict:
    metrics = {
        "run_id": run_id(cfg), "suite": cfg.suite, "method": method_label(cfg), "task": cfg.task.name,
        "model": cfg.model.name, "seed": cfg.train.seed, "status": "failed",
        "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
    }
    # not metrics.json: a failed run is not a result (run again with --retry-failed)
    atomic_write_json(run_dir(cfg) / FAILURE_FILE, metrics)
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
    finally:
        release_freed_memory()  # the next run in this process starts from its own memory
    store.finish(run_id(cfg), metrics["status"], metrics)
    return metrics
