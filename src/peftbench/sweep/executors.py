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
from peftbench.allocator import keep_freed_memory
from peftbench.progress import quiet_library_output
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


# What one CPU run may hold besides its weights: the interpreter, torch, activations.
RUN_OVERHEAD_BYTES = 1 << 30
# A worker process starts by importing torch and transformers (~5 s on 2 cores): worth it
# only when each has a few runs to do. RL runs take minutes each, so fewer suffice (the
# findings' GRPO experiment, 6 runs, took one worker at 8 and left a core idle).
RUNS_PER_CPU_WORKER = 8
RL_RUNS_PER_CPU_WORKER = 3


def default_workers(runs: list[RunConfig]) -> int:
    """One worker per GPU. On CPU, one single-threaded worker per core, as many as fit in
    half the available memory and have RUNS_PER_CPU_WORKER runs each: a benchmark grid's
    models are small, their matrix products too small to split well over threads and a
    step's Python serial, so runs side by side finish a grid sooner than one run on every
    core (the quickstart on 2 cores: 263 s against 343 s). A model whose size cannot be
    known offline gets one worker."""
    import psutil
    import torch

    if torch.cuda.is_available():
        return max(1, torch.cuda.device_count())
    per_worker = RL_RUNS_PER_CPU_WORKER if any(r.train.mode == "grpo" for r in runs) else RUNS_PER_CPU_WORKER
    if len(runs) < 2 * per_worker:
        return 1
    from peftbench.sweep.estimate import estimate_run

    params = estimate_run(runs[0]).base_params
    if params is None:
        return 1
    per_run = 16 * params + RUN_OVERHEAD_BYTES  # full fine-tuning: weights, gradients, two AdamW moments
    fit = psutil.virtual_memory().available // 2 // per_run
    return int(max(1, min(os.cpu_count() or 1, fit, len(runs) // per_worker)))


def _run_one(cfg: RunConfig, store_path: Path, show_progress: bool) -> Optional[dict]:
    from peftbench.sweep.worker import execute_tracked
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
    quiet_library_output()  # the parent draws one progress bar for all workers
    from peftbench.plugins import load_plugins

    load_plugins()  # (--include-path task files come with the environment, when peftbench.tasks loads)
    keep_freed_memory()
    for cfg in runs:
        _run_one(cfg, store_path, show_progress=False)


@EXECUTORS.decorator("local")
def run_local(runs: list[RunConfig], store_path: Path, options: ExecutorOptions, console: Console) -> None:
    workers = min(options.workers or default_workers(runs), len(runs))
    if workers <= 1:
        for i, cfg in enumerate(runs, 1):
            console.print(f"[bold]run {i}/{len(runs)}[/] {run_id(cfg)}")
            metrics = _run_one(cfg, store_path, options.show_progress)
            if metrics and metrics["status"] == "failed":
                console.print(f"[red]run {run_id(cfg)} failed:[/] {metrics['error']}")
        return
    console.print(f"{len(runs)} runs on {workers} worker processes")
    from peftbench.sweep.estimate import longest_first

    runs = longest_first(runs)  # workers claim in this order: they end together
    # spawn, not fork: a forked child would inherit this process's torch threads and CUDA state
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker, args=(i, workers, runs, store_path), daemon=False)
                 for i in range(workers)]
    for process in processes:
        process.start()
    _watch(processes, runs, store_path, options, console)
    for process in processes:
        process.join()
        if process.exitcode:
            console.print(f"[yellow]a worker exited with code {process.exitcode}[/]; its run is retried")


def _watch(processes: list, runs: list[RunConfig], store_path: Path, options: ExecutorOptions, console: Console,
           every_s: float = 1.0) -> None:
    """Until the workers exit: one progress bar over the runs (workers draw none of their
    own), and each failure printed as it is recorded, as the one-worker loop does."""
    from peftbench.progress import progress_bar
    from peftbench.sweep.store import FINAL, ResultStore

    store, ids = ResultStore(store_path), {run_id(cfg) for cfg in runs}
    finished: set[str] = set()
    with progress_bar(len(runs), "runs", options.show_progress) as advance:
        while any(process.is_alive() for process in processes):
            processes[0].join(timeout=every_s)
            statuses = {run: found for run, found in store.statuses().items() if run in ids}
            new = [run for run, (status, _) in statuses.items()
                   if run not in finished and (status in FINAL or status == "failed")]
            for run in new:
                status, error = statuses[run]
                if status == "failed":
                    console.print(f"[red]run {run} failed:[/] {error}")
            finished.update(new)
            failed = sum(1 for status, _ in statuses.values() if status == "failed")
            advance(len(new), status=f"{failed} failed" if failed else "")


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
        from peftbench.sweep.estimate import longest_first

        pending = {remote.remote(cfg, store_path, False): cfg for cfg in longest_first(runs)}
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
