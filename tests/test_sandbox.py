"""Untrusted code is contained: each attack ends as timeout/error and the host is unharmed,
in a one-shot interpreter (`run_program`) and in a child forked by the warm sandbox server."""


import os
import signal

import psutil
import pytest

from peftbench.metrics.code import check_programs, pass_at_k
from peftbench.metrics.sandbox import SandboxLimits, run_program
from peftbench.metrics.sandbox_server import SandboxServer

QUICK = SandboxLimits(timeout_s=2.0, memory_mb=256)


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "precious.txt"
    path.write_text("keep me")
    yield path
    assert path.read_text() == "keep me"  # every attack below must leave it untouched


@pytest.fixture(scope="module")
def server():
    with SandboxServer(QUICK) as warm:
        yield warm


@pytest.fixture(params=["one-shot", "server"])
def run(request, server):
    """Both ways of running a program; the server's limits are QUICK's."""
    if request.param == "one-shot":
        return run_program
    return lambda program, limits=QUICK: server.run(program)


@pytest.fixture(autouse=True)
def no_leftover_processes(server):
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    after = {p.pid for p in psutil.Process().children(recursive=True) if p.is_running() and p.status() != "zombie"}
    after.discard(server.pid)  # the warm server itself stays up between tests
    assert after <= before, "the sandbox left processes running"


def test_correct_program_passes_and_wrong_one_fails(run):
    assert run("def f(x): return x + 1\nassert f(1) == 2").status == "passed"
    wrong = run("def f(x): return x\nassert f(1) == 2")
    assert wrong.status == "failed" and "AssertionError" in wrong.reason


def test_syntax_error_is_an_error(run):
    result = run("def f(x) return x")
    assert result.status == "error" and "SyntaxError" in result.reason


def test_infinite_loop_times_out(run):
    assert run("while True:\n    pass", QUICK).status == "timeout"


def test_sleeping_forever_times_out_on_wall_clock(run):
    assert run("import time\ntime.sleep(60)", QUICK).status == "timeout"


def test_fork_bomb_is_refused(run):
    result = run("import os\nwhile True:\n    os.fork()", QUICK)
    assert result.status == "error" and "os.fork" in result.reason


def test_memory_bomb_is_stopped(run):
    result = run("x = bytearray(2 * 1024 ** 3)", QUICK)
    assert result.status == "error" and "memory" in result.reason


def test_writing_outside_the_sandbox_is_refused(run, victim):
    result = run(f"open({str(victim)!r}, 'w').write('owned')", QUICK)
    assert result.status == "error" and "outside" in result.reason
    result = run(f"open({str(victim.parent / 'new.txt')!r}, 'x')", QUICK)
    assert result.status == "error" and not (victim.parent / "new.txt").exists()


def test_deleting_outside_the_sandbox_is_refused(run, victim):
    for program in (f"import os\nos.remove({str(victim)!r})",
                    f"import shutil\nshutil.rmtree({str(victim.parent)!r})",
                    f"import os\nos.rename({str(victim)!r}, 'stolen.txt')"):
        result = run(program, QUICK)
        assert result.status == "error" and "sandbox" in result.reason


def test_shell_commands_are_refused(run, victim):
    for program in (f"import os\nos.system('rm -f {victim}')",
                    f"import subprocess\nsubprocess.run(['rm', '-f', {str(victim)!r}])",
                    f"import os\nos.execv('/bin/rm', ['rm', {str(victim)!r}])"):
        result = run(program, QUICK)
        assert result.status == "error" and "not allowed" in result.reason


def test_sockets_are_refused(run):
    result = run("import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 9))", QUICK)
    assert result.status == "error" and "socket" in result.reason


def test_environment_secrets_are_not_visible(monkeypatch):
    monkeypatch.setenv("PEFTBENCH_TEST_SECRET", "s3cr3t")
    program = "import os\nassert 'PEFTBENCH_TEST_SECRET' not in os.environ\nassert 's3cr3t' not in str(os.environ)"
    assert run_program(program, QUICK).status == "passed"
    with SandboxServer(QUICK) as started_with_the_secret_set:
        assert started_with_the_secret_set.run(program).status == "passed"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to list open descriptors")
def test_forked_child_holds_none_of_the_servers_descriptors(server):
    # 0-2 are /dev/null, /dev/null and the stderr file; the listing's own descriptor is the 4th
    program = "import os\nfds = sorted(map(int, os.listdir('/proc/self/fd')))\nassert fds == [0, 1, 2, 3], fds"
    result = server.run(program)
    assert result.passed, result.reason


def test_server_that_died_is_replaced(server):
    assert server.run("assert 1 + 1 == 2").passed
    os.kill(server.pid, signal.SIGKILL)
    assert server.run("assert 1 + 1 == 2").passed
    assert server.run("assert 1 + 1 == 3").status == "failed"


def test_server_gives_the_one_shot_verdicts(server):
    programs = ["assert sum([1, 2]) == 3", "assert sum([1, 2]) == 4", "raise KeyError('k')", "import sys; sys.exit(2)",
                "import sys; sys.exit(0)", "print('out'); import sys; print('err', file=sys.stderr)",
                "import threading\nt = threading.Thread(target=lambda: None); t.start(); t.join()",
                # 20 MB on stderr (over the 16 MB file-size limit: stderr must not be a file), then a verdict
                "import sys\nfor _ in range(20):\n    sys.stderr.write('x' * 2 ** 20)\nassert True",
                "import sys\nsys.stderr.write('noise\\n' * 300000)\nassert 1 == 2, 'the last line wins'"]
    assert [server.run(p) for p in programs] == [run_program(p, QUICK) for p in programs]


def test_files_inside_the_sandbox_are_fine(run):
    program = "open('scratch.txt', 'w').write('x')\nimport os\nos.remove('scratch.txt')"
    assert run(program, QUICK).status == "passed"


def test_check_programs_runs_tests_after_each_program():
    results = check_programs(["def f(x): return 2 * x", "def f(x): return x"], ["assert f(3) == 6"] * 2)
    assert [r.status for r in results] == ["passed", "failed"]


@pytest.mark.parametrize("n,c,k,expected", [
    (1, 1, 1, 1.0), (1, 0, 1, 0.0), (10, 3, 1, 0.3), (5, 2, 2, 1 - 3 / 10), (10, 0, 5, 0.0), (4, 3, 2, 1.0),
    (10, 5, 5, 1 - 1 / 252),
])
def test_pass_at_k_matches_closed_form(n, c, k, expected):
    # hand-worked: 1 - C(n-c, k)/C(n, k); e.g. n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
