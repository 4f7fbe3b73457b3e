"""Executors: who runs a sweep's pending runs.

Every executor does the same thing per run, `execute_tracked` (claim in the store, run,
record), so they differ only in where that happens:

- `local` with 1 worker: in this process, one run after another (progress bars shown);
- `local` with N workers: N worker processes that each claim the next free run (the
  store's atomic claim means no run is done twice); on a GPU machine each worker gets
  its own GPU;
- `ray`: each run a Ray task with its CPU/GPU request, on a local Ray instance or a
  cluster (`--address`). Workers must see the runs' output folder (shared filesystem).

An executor returns when every run it was given is finished, failed or abandoned by a
killed worker; the sweep then reconciles the store and hands it what is left.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from rich.console import Console

from peftbench.config import RunConfig
from peftbench.errors import PeftbenchError
from peftbench.registry import Registry
from peftbench.run import run_id


@dataclass(frozen=True)
class ExecutorOptions:
    workers: Optional[int] = None  # local: worker processes (None: what the machine can hold)
    address: Optional[str] = None  # ray: cluster address (None: start a local instance)
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0  # ray: GPUs each run asks for (0 on CPU clusters)
    show_progress: bool = True


Executor = Callable[[list[RunConfig], Path, ExecutorOptions, Console], None]
EXECUTORS: Registry[Executor] = Registry("executor")


def default_workers() -> int:
    """One worker per GPU; on CPU one (a run's matrix ops already use every core)."""
    import torch

    return max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1


def _run_one(cfg: RunConfig, store_path: Path, show_progress: bool) -> Optional[dict]:
    from peftbench.sweep.runner import execute_tracked
    from peftbench.sweep.store import ResultStore

    return execute_tracked(cfg, ResultStore(store_path), show_progress)


# ---------------------------------------------------------------- local


def _worker(index: int, workers: int, runs: list[RunConfig], store_path: Path) -> None:
    """A worker process: pin a GPU or a share of the cores, then claim runs until none is free."""
    import torch

    if torch.cuda.is_available():
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index % torch.cuda.device_count())
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    for cfg in runs:
        _run_one(cfg, store_path, show_progress=False)


@EXECUTORS.decorator("local")
def run_local(runs: list[RunConfig], store_path: Path, options: ExecutorOptions, console: Console) -> None:
    workers = min(options.workers or default_workers(), len(runs))
    if workers <= 1:
        for i, cfg in enumerate(runs, 1):
            console.print(f"[bold]run {i}/{len(runs)}[/] {run_id(cfg)}")
            metrics = _run_one(cfg, store_path, options.show_progress)
            if metrics and metrics["status"] == "failed":
                console.print(f"[red]run {run_id(cfg)} failed:[/] {metrics['error']}")
        return
    console.print(f"{len(runs)} runs on {workers} worker processes")
    # spawn, not fork: a forked child would inherit this process's torch threads and CUDA state
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker, args=(i, workers, runs, store_path), daemon=False)
                 for i in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
        if process.exitcode:
            console.print(f"[yellow]a worker exited with code {process.exitcode}[/]; its run is retried")


# ---------------------------------------------------------------- ray


def _import_ray():
    try:
        import ray
    except ImportError:
        raise PeftbenchError("--executor ray needs Ray: pip install 'peftbench[cluster]' (or pip install ray)") from None
    return ray


@EXECUTORS.decorator("ray")
def run_ray(runs: list[RunConfig], store_path: Path, options: ExecutorOptions, console: Console) -> None:
    ray = _import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        # a local instance gets the package through the driver's environment; a cluster's
        # workers need peftbench installed (or a runtime_env) and the output folder shared
        ray.init(address=options.address, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=options.cpus_per_run, num_gpus=options.gpus_per_run, max_retries=0)(_run_one)
        pending = {remote.remote(cfg, store_path, False): cfg for cfg in runs}
        console.print(f"{len(runs)} runs submitted to Ray ({ray.cluster_resources().get('CPU', 0):.0f} CPUs)")
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            cfg = pending.pop(done[0])
            try:
                metrics = ray.get(done[0])
            except ray.exceptions.RayError as exc:  # the worker died; the store still says running
                console.print(f"[red]run {run_id(cfg)} lost its Ray worker:[/] {type(exc).__name__}")
                continue
            status = metrics["status"] if metrics else "skipped"
            console.print(f"run {run_id(cfg)} {status} ({len(runs) - len(pending)}/{len(runs)})")
    finally:
        if started_here:
            ray.shutdown()
