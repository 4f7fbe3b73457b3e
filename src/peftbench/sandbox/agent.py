"""The sandbox's inside: the one process that runs a model-generated program.

The grader starts it as `python -I -S -B -c <this file's source> IN_FD OUT_FD` inside
bubblewrap's namespaces (see isolation.py). Before any line of the program runs it takes:

1. a seccomp filter (compiled by the grader, loaded here with prctl so that it can also
   forbid exec: a filter bwrap loads must let bwrap exec its command): no exec, fork,
   ptrace, namespaces, sockets other than AF_UNIX, kernel keyrings, ...;
2. resource limits: CPU seconds, address space, file size, open files, threads;
3. an audit hook, a second layer only (Python's docs say audit hooks are no sandbox),
   which turns refused operations into readable reasons.

Then it loads the program and answers the grader's requests, one JSON line each way on
two pipes: call one of the program's functions, or run the program on a stdin. Values
go back as plain data only (`to_wire`): an object of the program's own classes never
reaches the tests, so no method of it runs inside a comparison.

Nothing here decides a verdict: the tests run in the grader's process, which the program
can neither see nor reach. Ending this process, writing to the pipes or returning
wrong values are all failed tests there.

The grader imports this file too, for the wire format, so it uses only the standard
library and does its work under `if __name__ == "__main__"`.
"""

from __future__ import annotations

import math
import struct

NOBODY = 65534  # run by root, the agent becomes this user before reading the program
MAX_DEPTH = 64  # nesting of containers in one value
BIG_INT_BITS = 8192  # ints wider than this travel as hex (decimal text of huge ints is capped by Python)


class NotData(TypeError):
    """A value that is not plain data (builtin scalars and containers of them)."""


def _int(value: int):
    return value if value.bit_length() <= BIG_INT_BITS else {"i": format(value, "x")}


def _float(value: float):
    return value if math.isfinite(value) else {"x": repr(value)}


_ENCODERS = {
    bool: lambda v, d: v,
    str: lambda v, d: v,
    type(None): lambda v, d: v,
    int: lambda v, d: _int(v),
    float: lambda v, d: _float(v),
    list: lambda v, d: {"l": [to_wire(x, d) for x in v]},
    tuple: lambda v, d: {"t": [to_wire(x, d) for x in v]},
    set: lambda v, d: {"s": [to_wire(x, d) for x in v]},
    frozenset: lambda v, d: {"f": [to_wire(x, d) for x in v]},
    dict: lambda v, d: {"d": [[to_wire(k, d), to_wire(x, d)] for k, x in v.items()]},
    bytes: lambda v, d: {"b": v.hex()},
    complex: lambda v, d: {"c": [_float(v.real), _float(v.imag)]},
}


def to_wire(value, depth: int = 0):
    """`value` as JSON-ready data, if its type is exactly a builtin one (recursively);
    subclasses are refused: a `str` subclass can redefine `__eq__`."""
    if depth > MAX_DEPTH:
        raise NotData(f"nested deeper than {MAX_DEPTH}")
    encode = _ENCODERS.get(type(value))
    if encode is None:
        kind = type(value)
        raise NotData(f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', '?')}")
    return encode(value, depth + 1)


def _items(body) -> list:
    if type(body) is not list:
        raise ValueError("malformed value")
    return [from_wire(x) for x in body]


def _pairs(body) -> dict:
    if type(body) is not list or any(type(p) is not list or len(p) != 2 for p in body):
        raise ValueError("malformed mapping")
    return {from_wire(k): from_wire(v) for k, v in body}


def _text(body) -> str:
    if type(body) is not str:
        raise ValueError("malformed value")
    return body


def _complex(body) -> complex:
    if type(body) is not list or len(body) != 2:
        raise ValueError("malformed complex")
    return complex(*(from_wire(x) for x in body))


_SPECIAL_FLOATS = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
_DECODERS = {
    "l": _items,
    "t": lambda b: tuple(_items(b)),
    "s": lambda b: set(_items(b)),
    "f": lambda b: frozenset(_items(b)),
    "d": _pairs,
    "b": lambda b: bytes.fromhex(_text(b)),
    "c": _complex,
    "i": lambda b: int(_text(b), 16),
    "x": lambda b: _SPECIAL_FLOATS[_text(b)],
}


def from_wire(data):
    """The value `to_wire` encoded; anything else is a ValueError (or TypeError for an
    unhashable key). Builds builtin objects only."""
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is dict and len(data) == 1:
        ((tag, body),) = data.items()
        if tag in _DECODERS:
            return _DECODERS[tag](body)
    raise ValueError("not a value of the sandbox's wire format")


try:
    from _json import encode_basestring_ascii as _quote
except ImportError:  # pragma: no cover - CPython has the accelerator
    from json.encoder import py_encode_basestring_ascii as _quote


def json_text(data) -> str:
    """JSON for what `to_wire` returns and replies made of it (the agent cannot afford
    importing the json package: it is a third of its start-up time)."""
    kind = type(data)
    if kind is str:
        return _quote(data)
    if data is None or kind is bool:
        return {None: "null", True: "true", False: "false"}[data]
    if kind is int:
        return int.__repr__(data)
    if kind is float:
        return float.__repr__(data)  # finite: to_wire tags inf and nan
    if kind is list:
        return "[" + ",".join(map(json_text, data)) + "]"
    if kind is dict:
        return "{" + ",".join(_quote(k) + ":" + json_text(v) for k, v in data.items()) + "}"
    raise TypeError(f"no JSON for {kind.__name__}")


# Frames on the pipes: a 4-byte length, then the payload. The grader sends marshal (its
# requests hold plain data only; marshal is what the agent can load without imports),
# the agent answers in JSON, which the grader parses safely whatever the program wrote.
HEADER = struct.Struct(">I")


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


# ---------------------------------------------------------------- the inside

# Audit events refused with a reason (the seccomp filter refuses the same at the kernel).
_DENY_PREFIX = ("socket.", "subprocess.", "ctypes.", "pty.", "os.exec", "os.spawn", "os.posix_spawn",
                "_posixsubprocess.")
_DENY = {"os.system", "os.fork", "os.forkpty", "os.kill", "os.killpg", "os.setuid", "os.setgid",
         "resource.setrlimit", "resource.prlimit", "os.putenv", "os.chroot", "signal.pthread_kill",
         "webbrowser.open", "urllib.Request", "http.client.connect"}


def _guard(event, args):
    if event in _DENY or event.startswith(_DENY_PREFIX):
        raise PermissionError(f"sandbox: {event} is not allowed")


def _load_seccomp(bpf: bytes) -> None:
    """Install the grader's seccomp program (raw `struct sock_filter` array) on this process."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    pr_set_no_new_privs, pr_set_seccomp, seccomp_mode_filter = 38, 22, 2
    if libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    program = Program(len(bpf) // 8, bpf)
    if libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.byref(program), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")


def _describe(exc: BaseException) -> list:
    message = str(exc) if not isinstance(exc, MemoryError) else "memory limit reached"
    return [type(exc).__name__, message[:1000]]


class _Channel:
    def __init__(self, read_fd: int, write_fd: int):
        import os

        self._os, self._in, self._out = os, read_fd, write_fd

    def _read(self, size: int):
        data = b""
        while len(data) < size:
            chunk = self._os.read(self._in, size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def receive(self):
        import marshal

        header = self._read(HEADER.size)
        payload = None if header is None else self._read(HEADER.unpack(header)[0])
        return None if payload is None else marshal.loads(payload)

    def send(self, message: dict) -> None:
        data = frame(json_text(message).encode())
        while data:
            data = data[self._os.write(self._out, data):]


def _value_reply(value) -> dict:
    try:
        return {"value": to_wire(value)}
    except NotData as exc:
        return {"rejected": str(exc)}
    except RecursionError:
        return {"rejected": "nested too deeply"}


def _call(namespace: dict, request: dict) -> dict:
    name = request["name"]
    try:
        function = namespace.get(name)
        if function is None and "Solution" in namespace:  # LeetCode-style: a method of class Solution
            function = getattr(namespace["Solution"](), name)
        if function is None:
            raise NameError(f"name {name!r} is not defined")
        value = function(*request["args"], **request["kwargs"])
    except BaseException as exc:  # SystemExit included: exiting is not an answer
        return {"raised": _describe(exc)}
    return _value_reply(value)


def _run_on_stdin(code, request: dict, cap: int) -> dict:
    """Run the whole program as __main__ with `stdin`; return what it printed (capped)."""
    import io
    import sys

    stdin = io.TextIOWrapper(io.BytesIO(request["stdin"].encode()), encoding="utf-8")
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    sys.stdin, sys.stdout = stdin, stdout
    try:
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
    except SystemExit:
        pass  # a program that prints its answer and exits has answered
    except BaseException as exc:
        return {"raised": _describe(exc)}
    finally:
        sys.stdin, sys.stdout = sys.__stdin__, sys.__stdout__
    try:
        stdout.flush()
        printed = stdout.detach().getvalue()  # detached: the wrapper would close the buffer when collected
    except (ValueError, OSError):
        return {"raised": ["ValueError", "the program closed its standard output"]}
    return {"stdout": printed[: cap + 1].decode("utf-8", errors="replace")}


def _program_names(namespace: dict) -> list:
    """The functions and classes the program defined: the names its tests may call."""
    import types

    return sorted(name for name, value in list(namespace.items())
                  if isinstance(value, (types.FunctionType, type)) and getattr(value, "__module__", None) == "solution")


def _drop_privileges(os) -> None:
    """Started as root (bwrap run by root keeps CAP_SETUID/CAP_SETGID for this), become
    nobody: with every id non-zero the kernel clears the remaining capabilities."""
    if os.geteuid() != 0:
        return
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)
    if os.getresuid() != (NOBODY,) * 3 or os.getresgid() != (NOBODY,) * 3:
        raise PermissionError("could not drop to an unprivileged user")


def _serve(channel: _Channel, setup: dict) -> None:
    import os
    import resource
    import sys

    _drop_privileges(os)

    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 2)  # the program's stderr goes nowhere: replies carry the reasons
    low, high = sorted((channel._in, channel._out))  # every other descriptor is closed
    os.closerange(3, low)
    os.closerange(low + 1, high)
    os.closerange(high + 1, 1 << 16)
    _load_seccomp(bytes.fromhex(setup["seccomp"]))
    for name, value in setup["limits"]:
        resource.setrlimit(name, (value, value))
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 3000))
    sys.addaudithook(_guard)
    channel.send({"ready": True})  # isolated and limited: what follows is the program's doing
    try:
        code = compile(setup["program"], "solution.py", "exec")
    except BaseException as exc:
        channel.send({"raised": _describe(exc)})
        return
    namespace = {"__name__": "solution", "__builtins__": __builtins__}
    if not setup.get("stdio"):
        try:
            exec(code, namespace)
        except BaseException as exc:
            channel.send({"raised": _describe(exc)})
            return
    channel.send({"loaded": _program_names(namespace)})
    while (request := channel.receive()) is not None:
        if "stdin" in request:
            channel.send(_run_on_stdin(code, request, setup["output_cap"]))
        else:
            channel.send(_call(namespace, request))


def main(argv: list) -> None:
    import os

    channel = _Channel(int(argv[1]), int(argv[2]))
    try:
        setup = channel.receive()
        _serve(channel, setup)
    except BaseException as exc:  # the agent itself failed (before the program, or the pipe broke)
        try:
            channel.send({"fatal": _describe(exc)})
        except BaseException:
            pass
    os._exit(0)


if __name__ == "__main__":
    import sys as _sys

    main(_sys.argv)
