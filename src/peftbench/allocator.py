"""glibc malloc settings that keep big CPU tensors' memory in the process.

glibc gives an allocation above its mmap threshold (128 KiB, raised as blocks are freed,
to at most 32 MiB) pages of its own, and hands them back to the kernel when the tensor is
freed. The next tensor of that size faults its pages in again, one by one, and the kernel
zeroes each. Batched evaluation allocates tens of MB per step (a layer's keys and values
repeated for grouped-query attention, the prefill's activations over 200 rows), so on
micro-math that page faulting took about 40% of the evaluation (0.8 s against 1.4 s for
200 few-shot problems; `benchmarks/bench_eval.py`).

Serving blocks up to 1 GiB from the heap, and trimming the heap only once 1 GiB is free at
its top, reuses those pages instead. It is what PyTorch's CPU performance guide gets by
preloading jemalloc or tcmalloc, without the preload. A process whose allocator is already
chosen (a preloaded malloc, MALLOC_* variables or GLIBC_TUNABLES) is left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import platform

M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30

_applied: bool | None = None


def allocator_chosen_elsewhere() -> bool:
    preload = os.environ.get("LD_PRELOAD", "")
    return ("malloc" in preload or "GLIBC_TUNABLES" in os.environ
            or any(name.startswith("MALLOC_") for name in os.environ))


def keep_freed_memory() -> bool:
    """Apply the settings once per process; whether they are in force."""
    global _applied
    if _applied is None:
        _applied = False
        if platform.libc_ver()[0] == "glibc" and not allocator_chosen_elsewhere():
            libc = ctypes.CDLL(ctypes.util.find_library("c"))
            # mallopt returns 1 on success; the mmap threshold first, as setting either
            # one turns glibc's dynamic threshold off
            _applied = bool(libc.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES) and libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
    return _applied


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the kernel (glibc's malloc_trim), after a garbage
    collection. With the settings above the heap keeps up to 1 GiB at its top and everything
    freed below it, so a sweep worker that runs one run after another held each earlier run's
    high-water mark (10 GB after six SmolLM2 runs on IMDB-length reviews) and measured it
    into the next run's peak memory. Called between runs and before a peak is measured."""
    gc.collect()
    if platform.libc_ver()[0] == "glibc":
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)


def keeps_freed_memory() -> bool:
    """Whether this process runs with the settings (without applying them)."""
    return bool(_applied)
