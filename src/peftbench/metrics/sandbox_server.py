"""A warm sandbox: one idle interpreter that forks a fresh child for each program.

Starting a Python interpreter costs ~25 ms, more than most test programs take to run;
pass@k over a real benchmark runs tens of thousands of them. The server is started once
(the same isolated `python -I -B` with a clean environment as `run_program` uses) and
runs only trusted code: for each job it forks, and the child takes exactly the sandbox
of a one-shot run before any untrusted code runs:

- its own session and process group (killed as a whole on timeout), its own temporary
  working directory, the clean environment;
- stdin and stdout on /dev/null, stderr a pipe the server drains, and every other
  descriptor closed, so nothing of the server's (its pipes to peftbench) stays reachable;
- the same resource limits, then the same audit hook and program loader (`GUARD`).

The server reaps the child, kills what is left of its process group, and answers with
the exit status and stderr's last 4000 bytes, which the caller classifies as
`run_program` does. Where
the server cannot start or stops answering, `SandboxServer.run` falls back on
`run_program` for that job, so a result is never lost to the speed-up.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Optional

from peftbench.metrics.sandbox import (
    GUARD, ExecutionResult, SandboxLimits, classify, clean_environment, program_in_own_directory, resource_limits,
    run_program, timed_out,
)

# The server's loop (trusted code only). argv[1] is GUARD. A job is one JSON line:
# workdir, path, env, limits, timeout; the answer one JSON line: returncode, timeout and
# the tail of stderr. The child's stderr is a pipe the server drains while it waits, as
# `run_program`'s is (a file would count against the file-size limit).
_SERVER = r'''
import json, os, resource, select, signal, sys, time, traceback
_GUARD = compile(sys.argv[1], "<sandbox>", "exec")  # once, not in every child
_TAIL = 4000

def _child(job, err):
    os.setsid()
    os.chdir(job["workdir"])
    os.environ.clear()
    os.environ.update(job["env"])
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(err, 2)
    os.closerange(3, 1 << 16)
    for name, value in job["limits"]:
        resource.setrlimit(name, (value, value))
    sys.argv = ["-c", job["path"]]
    code = 0
    try:
        exec(_GUARD, {"__name__": "__sandbox__"})
    except SystemExit as stop:
        if isinstance(stop.code, int) or stop.code is None:
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(code)

def _exited(pid):
    # WNOWAIT: the child stays unreaped, so its process group id cannot be reused yet
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

def _wait(pid, err, timeout):
    # (exited before the wall-clock limit, stderr's tail), reading stderr as it comes
    pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    watched = [err] + ([pidfd] if pidfd is not None else [])
    tail, deadline = b"", time.monotonic() + timeout
    try:
        while True:
            if pidfd is None and _exited(pid):
                return True, tail
            left = deadline - time.monotonic()
            if left <= 0:
                return False, tail
            ready = select.select(watched, [], [], left if pidfd is not None else min(left, 0.0005))[0]
            if err in ready:
                chunk = os.read(err, 65536)
                if chunk:
                    tail = (tail + chunk)[-_TAIL:]
                else:
                    watched.remove(err)  # closed: only the exit is left to wait for
            if pidfd is not None and pidfd in ready:
                return True, tail
    finally:
        if pidfd is not None:
            os.close(pidfd)

def _drain(err, tail):
    # what the group wrote before it died (the read end is closed here)
    try:
        while chunk := os.read(err, 65536):
            tail = (tail + chunk)[-_TAIL:]
    finally:
        os.close(err)
    return tail

for line in sys.stdin:
    job = json.loads(line)
    sys.stdout.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _child(job, write_end)
    os.close(write_end)
    exited, tail = _wait(pid, read_end, job["timeout"])
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _, status = os.waitpid(pid, 0)
    tail = _drain(read_end, tail)
    answer = {"returncode": os.waitstatus_to_exitcode(status), "timeout": not exited,
              "stderr": tail.decode("utf-8", errors="replace")}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
'''


def server_supported() -> bool:
    """fork, and a way to wait for a child without reaping it (pidfd on Linux, waitid elsewhere)."""
    return hasattr(os, "fork") and (hasattr(os, "pidfd_open") or hasattr(os, "waitid"))


class SandboxServer:
    """Runs programs one at a time, each in a freshly forked sandboxed child; use one server
    per thread. A context manager: `close` ends the server."""

    def __init__(self, limits: SandboxLimits = SandboxLimits()):
        self.limits = limits
        self._proc: Optional[subprocess.Popen] = None
        self._lost = 0  # jobs in a row the server died on: after two, it is not started again
        self._home = tempfile.mkdtemp(prefix="peftbench-sandbox-server-")

    def __enter__(self) -> "SandboxServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pid(self) -> Optional[int]:
        """The server process's id while it runs (None before the first job)."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-B", "-c", _SERVER, GUARD],
                cwd=self._home, env=clean_environment(self._home), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, start_new_session=True, text=True, bufsize=1,
            )
        return self._proc

    def run(self, program: str) -> ExecutionResult:
        """Run `program` (Python source) in a forked sandboxed child; passed means it exited cleanly."""
        if self._lost >= 2:
            return run_program(program, self.limits)
        with program_in_own_directory(program) as (workdir, path):
            answer = self._ask({"workdir": workdir, "path": path, "env": clean_environment(workdir),
                                "limits": resource_limits(self.limits), "timeout": self.limits.timeout_s})
        if answer is None:  # the server died or hung: this job the slow, sure way
            self._lost += 1
            return run_program(program, self.limits)
        self._lost = 0
        return timed_out(self.limits) if answer["timeout"] else classify(answer["returncode"], answer["stderr"])

    def _ask(self, job: dict) -> Optional[dict]:
        try:
            proc = self._start()
            proc.stdin.write(json.dumps(job) + "\n")
            proc.stdin.flush()
            # the server enforces the time limit itself; this is the backstop should it hang
            if not select.select([proc.stdout], [], [], self.limits.timeout_s + 10)[0]:
                raise TimeoutError
            line = proc.stdout.readline()
            return json.loads(line) if line else self._stop()
        except (OSError, ValueError, TimeoutError):
            return self._stop()

    def _stop(self) -> None:
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            self._proc = None
        return None

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._proc.stdin.close()  # end of input: the server's loop ends
                self._proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._stop()
        shutil.rmtree(self._home, ignore_errors=True)
