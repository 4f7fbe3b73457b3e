"""Run untrusted (model-generated) Python in a sandbox.

Layers, each for a reason:
- a separate interpreter in its own process group (start_new_session), killed as a whole
  group on timeout, so no child outlives the check;
- resource limits: CPU seconds, address space (memory bombs), file size, open files,
  processes (effective for non-root users), no core dumps;
- its own temporary working directory, removed afterwards, and an environment holding
  nothing of the parent's (no tokens or secrets to read);
- inside, a Python audit hook installed before the program runs (audit hooks cannot be
  removed): it refuses sockets, subprocesses, fork/exec/spawn, signals to other
  processes, ctypes, and any write, delete, rename or permission change outside the
  temporary directory. That also stops fork bombs when running as root, where
  RLIMIT_NPROC is not enforced.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Literal

Status = Literal["passed", "failed", "timeout", "error"]

# Runs first in the child; the program's path is argv[1].
GUARD = r'''
import os, sys
_ROOT = os.path.realpath(os.getcwd())
_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_DENY_PREFIX = ("socket.", "subprocess.", "ctypes.", "pty.", "os.exec", "os.spawn", "os.posix_spawn", "_posixsubprocess.")
_DENY = {"os.system", "os.fork", "os.forkpty", "os.kill", "os.killpg", "os.setuid", "os.setgid", "resource.setrlimit",
         "os.putenv", "os.chroot", "webbrowser.open", "urllib.Request", "http.client.connect"}
_PATH_EVENTS = {"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.utime",
                "shutil.rmtree", "shutil.move", "shutil.copyfile", "os.listxattr"}
_TWO_PATHS = {"os.rename", "os.link", "os.symlink", "shutil.copytree"}

def _inside(path):
    try:
        if isinstance(path, int):
            return True
        real = os.path.realpath(os.fsdecode(path))
    except Exception:
        return False
    return real == _ROOT or real.startswith(_ROOT + os.sep)

def _hook(event, args):
    if event in _DENY or event.startswith(_DENY_PREFIX):
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "open":
        path, mode, flags = (tuple(args) + (None, None, 0))[:3]
        writing = (mode is not None and any(c in str(mode) for c in "wax+")) or bool((flags or 0) & _WRITE)
        if writing and path is not None and not _inside(path):
            raise PermissionError(f"sandbox: writing {path!r} outside the sandbox directory")
    elif event in _PATH_EVENTS and args and not _inside(args[0]):
        raise PermissionError(f"sandbox: {event} on {args[0]!r} outside the sandbox directory")
    elif event in _TWO_PATHS and not all(_inside(a) for a in args[:2]):
        raise PermissionError(f"sandbox: {event} outside the sandbox directory")

sys.addaudithook(_hook)
_path = sys.argv[1]
with open(_path) as _f:
    _source = _f.read()
del _f
_globals = {"__name__": "__main__", "__file__": _path}
exec(compile(_source, _path, "exec"), _globals)
'''


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 5.0
    memory_mb: int = 512
    file_mb: int = 16
    max_processes: int = 64
    max_open_files: int = 64


@dataclass(frozen=True)
class ExecutionResult:
    status: Status
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def resource_limits(limits: SandboxLimits) -> list[tuple[int, int]]:
    """(resource, hard = soft limit) pairs the child sets on itself before the program runs."""
    return [
        (resource.RLIMIT_CPU, int(limits.timeout_s) + 1),
        (resource.RLIMIT_AS, limits.memory_mb * 1024 * 1024),
        (resource.RLIMIT_FSIZE, limits.file_mb * 1024 * 1024),
        (resource.RLIMIT_NOFILE, limits.max_open_files),
        (resource.RLIMIT_NPROC, limits.max_processes),
        (resource.RLIMIT_CORE, 0),
    ]


def _limit(limits: SandboxLimits):
    def apply() -> None:
        for name, value in resource_limits(limits):
            resource.setrlimit(name, (value, value))

    return apply


def clean_environment(workdir: str) -> dict[str, str]:
    """All the program sees of an environment: nothing of the parent's (no tokens or secrets)."""
    return {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def classify(returncode: int, stderr: str) -> ExecutionResult:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if returncode == 0:
        return ExecutionResult("passed")
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return ExecutionResult("timeout", "CPU time limit reached")
    if last.startswith("AssertionError"):
        return ExecutionResult("failed", last)
    if "MemoryError" in last:
        return ExecutionResult("error", "memory limit reached")
    return ExecutionResult("error", last or f"exit status {returncode}")


@contextmanager
def program_in_own_directory(program: str) -> Iterator[tuple[str, str]]:
    """(directory, path): a new temporary directory holding `program` as program.py, removed
    afterwards with whatever the program left there."""
    workdir = tempfile.mkdtemp(prefix="peftbench-sandbox-")
    try:
        path = os.path.join(workdir, "program.py")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(program)
        yield workdir, path
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def timed_out(limits: SandboxLimits) -> ExecutionResult:
    return ExecutionResult("timeout", f"wall time limit of {limits.timeout_s}s reached")


def run_program(program: str, limits: SandboxLimits = SandboxLimits()) -> ExecutionResult:
    """Run `program` (Python source) under the sandbox; passed means it exited cleanly."""
    with program_in_own_directory(program) as (workdir, path):
        proc = subprocess.Popen(
            [sys.executable, "-I", "-B", "-c", GUARD, path],
            cwd=workdir, env=clean_environment(workdir), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True, preexec_fn=_limit(limits), text=True,
        )
        try:
            _, stderr = proc.communicate(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.communicate()
            return timed_out(limits)
        finally:
            _kill_group(proc.pid)  # whatever the program started dies with it
        return classify(proc.returncode, stderr[-4000:])
