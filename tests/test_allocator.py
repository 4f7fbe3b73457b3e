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
