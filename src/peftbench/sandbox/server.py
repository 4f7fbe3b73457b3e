"""A warm grading server: one trusted process that forks a grader per program.

Starting an interpreter costs more than most test programs take to run, and pass@k over
a benchmark runs tens of thousands of them. So each worker thread of `check_programs`
keeps one server (`python -I -m peftbench.sandbox`, started with an empty
environment). Per program the server forks a child in its own process group, which
starts the sandboxed program (isolation.py) and runs the tests against it (grading.py);
at the wall-clock deadline the server kills the child's group, and with it bwrap and
everything in the sandbox's namespace. The verdict travels child -> server -> caller on
pipes the program has no way to reach (it lives in other namespaces, as another user).
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
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict
from queue import Queue
from typing import Mapping, Optional, Sequence, Union

from peftbench.sandbox.grading import ExecutionResult, SandboxLimits, grade


def job_for(program: str, reference: Union[str, Mapping]) -> dict:
    """What to grade: a reference is assert tests (micro-code, MBPP), or {"prefix", "tests"}
    where the program continues a given prefix (HumanEval's prompt: a body and a full
    re-definition both work after it), or {"stdio": cases} (APPS)."""
    if isinstance(reference, str):
        return {"program": program, "tests": reference}
    if "stdio" in reference:
        return {"program": program, "stdio": reference["stdio"]}
    return {"program": f"{reference['prefix']}{program}", "prefix": reference["prefix"], "tests": reference["tests"]}


# ---------------------------------------------------------------- the server process


def _become_subreaper() -> None:
    """Orphans of a grader (a killed bwrap) come back to this process to be reaped."""
    import ctypes

    pr_set_child_subreaper = 36
    ctypes.CDLL(None).prctl(pr_set_child_subreaper, 1, 0, 0, 0)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _grade_in_child(request: dict, command: list[str], seccomp: bytes, write_end: int) -> None:
    os.setpgid(0, 0)  # the grader and its sandbox: one group to kill at the deadline
    try:
        verdict = grade(request["job"], command, seccomp, SandboxLimits(**request["limits"]))
    except BaseException as exc:
        verdict = {"status": "error", "reason": f"grader: {type(exc).__name__}: {exc}"[:1000]}
    os.write(write_end, json.dumps(verdict).encode())
    os._exit(0)


def _serve_one(request: dict, command: list[str], seccomp: bytes) -> dict:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _grade_in_child(request, command, seccomp, write_end)
    os.close(write_end)
    pidfd = os.pidfd_open(pid)
    try:
        exited = bool(select.select([pidfd], [], [], request["limits"]["timeout_s"])[0])
    finally:
        os.close(pidfd)
    if not exited:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as verdicts:
        written = verdicts.read()
    _reap()
    if not exited:
        return {"status": "timeout", "reason": f"wall time limit of {request['limits']['timeout_s']}s reached"}
    try:
        return json.loads(written)
    except ValueError:
        return {"status": "error", "reason": "the grader died before giving a verdict"}


def serve() -> None:
    """The server's loop: a job per line on stdin, a verdict per line on stdout."""
    from peftbench.sandbox.isolation import SandboxUnavailable, sandbox_command, seccomp_program

    commands: dict[int, list[str]] = {}  # by the size of the sandbox's tmpfs
    _become_subreaper()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            seccomp = seccomp_program()
            size = request["limits"]["file_mb"] << 20
            command = commands[size] = commands.get(size) or sandbox_command(size)
        except SandboxUnavailable as exc:
            answer = {"unavailable": str(exc)}
        else:
            answer = _serve_one(request, command, seccomp)
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


# ---------------------------------------------------------------- the caller's side


class SandboxServer:
    """Grades programs one at a time through a warm server process; use one per thread.
    A context manager: `close` ends the server."""

    def __init__(self, limits: SandboxLimits = SandboxLimits()):
        self.limits = limits
        self._proc: Optional[subprocess.Popen] = None
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
            # an environment with nothing of the caller's (no tokens or secrets) but the PATH
            # that finds bwrap and setpriv
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-m", "peftbench.sandbox"], cwd=self._home, env=env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
                text=True, bufsize=1)
        return self._proc

    def run(self, program: str, reference: Union[str, Mapping] = "") -> ExecutionResult:
        """Grade `program` against `reference` (see `job_for`)."""
        request = {"job": job_for(program, reference), "limits": asdict(self.limits)}
        for _ in range(2):  # a server that died is replaced once
            answer = self._ask(request)
            if answer is not None:
                if "unavailable" in answer:
                    from peftbench.sandbox.isolation import SandboxUnavailable

                    self._stop()
                    raise SandboxUnavailable(answer["unavailable"])
                return ExecutionResult(answer["status"], answer.get("reason", ""))
        return ExecutionResult("error", "the sandbox server died twice on this program")

    def _ask(self, request: dict) -> Optional[dict]:
        try:
            proc = self._start()
            proc.stdin.write(json.dumps(request) + "\n")
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


def check_programs(programs: Sequence[str], references: Sequence, limits: SandboxLimits = SandboxLimits(),
                   workers: int = 4) -> list[ExecutionResult]:
    """Each program graded against its reference in the sandbox, by `workers` warm servers
    in parallel."""
    if not programs:
        return []
    with ExitStack() as stack:
        servers: Queue = Queue()
        for _ in range(min(workers, len(programs))):
            servers.put(stack.enter_context(SandboxServer(limits)))

        def run(pair) -> ExecutionResult:
            server = servers.get()  # one program at a time per server
            try:
                return server.run(*pair)
            finally:
                servers.put(server)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(run, zip(programs, references)))

