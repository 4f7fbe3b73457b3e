"""The malloc settings keep a freed big tensor's pages for the next one (no page faults)."""

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")

# a training or evaluation step in miniature: the same big tensor shapes made and freed every step
REALLOCATE = """
import json, resource, sys, torch
from peftbench.allocator import keep_freed_memory, keeps_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "apply" else False
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():  # a 64 MiB tensor (over glibc's largest dynamic mmap threshold, 32 MiB) made and freed
    x = torch.ones(16 << 20)
    del x
for _ in range(12):  # the heap settles: freed blocks coalesce into one that fits the next
    step()
before = faults()
step(); step()
print(json.dumps({"applied": applied, "reported": keeps_freed_memory(), "faults": faults() - before}))
"""


def reallocate(mode: str, **env) -> dict:
    out = subprocess.run([sys.executable, "-c", REALLOCATE, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_freed_big_tensor_is_reused_without_faulting_its_pages_in_again():
    default, kept = reallocate("leave"), reallocate("apply")
    pages = (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert default["faults"] > pages  # glibc unmapped each: every page of both faults in again
    assert kept["applied"] and kept["reported"]
    assert kept["faults"] < pages // 20


def test_an_allocator_chosen_by_the_environment_is_left_alone():
    chosen = reallocate("apply", MALLOC_ARENA_MAX="2")
    assert not chosen["applied"] and not chosen["reported"]


# a run in miniature that leaves freed memory in the heap, as a sweep worker's run does
RETAIN = """
import json, psutil, torch
from peftbench.allocator import keep_freed_memory, release_freed_memory
keep_freed_memory()  # first, as the CLI does
from peftbench.cost.measure import PeakMemory
rss = lambda: psutil.Process().memory_info().rss
start = rss()
tensors, pinned = [], []
for i in range(100):  # ~0.8 GB in 8 MB blocks: under the 1 GiB at which glibc trims the heap's top itself
    tensors.append(torch.ones(2_000_000 + 1000 * i))
    pinned.append(torch.ones(10))
del tensors
held = rss()
with PeakMemory(torch.device("cpu")) as memory:  # the next run's measurement
    torch.ones(1000).sum()
released = rss()
release_freed_memory()
print(json.dumps({"start": start, "held": held, "released": released, "peak": memory.peak_bytes}))
"""


def test_freed_heap_memory_goes_back_before_the_next_run_is_measured(tmp_path):
    script = tmp_path / "retain.py"  # a script file: under `python -c` glibc happened to trim on its own
    script.write_text(RETAIN)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout)
    freed = found["held"] - found["start"]
    assert freed > 500 << 20  # the settings kept the freed tensors' pages in the process
    # the measurement started from a trimmed heap: the earlier run's memory is not in its peak
    assert found["released"] - found["start"] < freed / 4
    assert found["peak"] - found["start"] < freed / 4
