"""The sweep survives being killed: nothing finished is redone, nothing half-done is read."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from peftbench.io import read_json
from peftbench.sweep.store import STORE_FILE, ResultStore


def suite_yaml(tmp_path, seeds, max_steps=4, **train):
    raw = {
        "name": "kill",
        "model": {"name": "tiny-random-llama", "device": "cpu"},
        "methods": [{"name": "lora", "target_modules": "all-linear"}],
        "tasks": [{"name": "toy-sentiment", "max_eval": 8}],
        "seeds": seeds,
        "train": {"max_steps": max_steps, "batch_size": 8, "logging_steps": 1, **train},
        "eval": {"max_new_tokens": 10},
        "output_dir": str(tmp_path / "runs"),
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


STARTED = []


def sweep(path, *extra):
    proc = subprocess.Popen([sys.executable, "-m", "peftbench", "run", str(path), "--no-progress", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    STARTED.append(proc)
    return proc


@pytest.fixture(autouse=True)
def kill_leftover_sweeps():
    yield
    while STARTED:  # a failed assertion must not leave a sweep training in the background
        proc = STARTED.pop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(predicate, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_store_lifecycle(tmp_path):
    store = ResultStore(tmp_path / STORE_FILE)
    store.register("r1", "s", "lora", "t", 0, {"a": 1})
    store.register("r1", "s", "lora", "t", 0, {"a": 1})  # idempotent
    assert store.claim("r1") and not store.claim("r1")  # a running run is not claimed twice
    store.finish("r1", "done", {"score": 1.0})
    assert not store.claim("r1")  # finished runs are never redone
    row = store.get("r1")
    assert row["status"] == "done" and row["metrics"] == {"score": 1.0} and row["attempts"] == 1
    assert [r["run_id"] for r in store.rows("done")] == ["r1"]


def test_dead_running_rows_are_reset(tmp_path):
    store = ResultStore(tmp_path / STORE_FILE)
    store.register("r1", "s", "lora", "t", 0, {})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.claim("r1")
    with store._connect() as db:  # pretend the claim came from the dead process
        db.execute("UPDATE runs SET pid=? WHERE run_id='r1'", (dead.pid,))
    assert store.reconcile() == ["r1"] and store.get("r1")["status"] == "interrupted"
    assert store.claim("r1") and store.get("r1")["attempts"] == 2


def test_sweep_killed_mid_run_resumes_without_redoing_finished_runs(tmp_path):
    root = tmp_path / "runs" / "kill"
    # first sweep: seed 0 only, left to finish
    path = suite_yaml(tmp_path, [0], max_steps=150)
    first = sweep(path)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    (done_dir,) = [p.parent for p in root.glob("*/metrics.json") if not p.parent.name.startswith("base-")]
    stamp = (done_dir / "metrics.json").stat().st_mtime_ns
    adapter_stamp = (done_dir / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns

    # second sweep adds seed 1 (same protocol): seed 0 is skipped, seed 1 is killed mid-training
    path = suite_yaml(tmp_path, [0, 1], max_steps=150)
    proc = sweep(path)
    # kill the whole sweep (process group) as soon as the second run is training
    def second_run_training():
        logs = [p for p in root.glob("*/train_log.jsonl") if p.parent != done_dir]
        return logs and logs[0].stat().st_size > 0 and logs[0]
    killed_log = wait_for(second_run_training)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_dir = killed_log.parent
    assert not (killed_dir / "metrics.json").exists()
    store = ResultStore(root / STORE_FILE)
    assert store.get(killed_dir.name)["status"] == "running"  # as the kill left it

    again = sweep(path)
    assert again.wait(timeout=300) == 0, again.stderr.read()
    assert (done_dir / "metrics.json").stat().st_mtime_ns == stamp  # not retrained
    assert (done_dir / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns == adapter_stamp
    assert read_json(killed_dir / "metrics.json")["status"] == "done"  # the interrupted run completed
    rows = [r for r in store.rows() if r["method"] != "base"]
    assert sorted(r["run_id"] for r in rows) == sorted({done_dir.name, killed_dir.name})  # one row per run
    assert all(r["status"] == "done" for r in rows)
    assert store.get(killed_dir.name)["attempts"] == 2 and store.get(done_dir.name)["attempts"] == 1


def test_local_workers_share_a_sweep_without_doing_a_run_twice(tmp_path):
    # runs of ~0.2 s: a dozen, so the worker that finishes importing torch second still
    # finds some left (both start within a fraction of a second of each other)
    path = suite_yaml(tmp_path, list(range(12)), max_steps=3)
    proc = sweep(path, "--workers", "2")
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    store = ResultStore(tmp_path / "runs" / "kill" / STORE_FILE)
    rows = [r for r in store.rows() if r["method"] != "base"]
    assert len(rows) == 12 and all(r["status"] == "done" and r["attempts"] == 1 for r in rows)
    workers = {r["metrics"]["worker_pid"] for r in rows}
    assert len(workers) == 2 and os.getpid() not in workers  # both worker processes took runs


def test_ray_executor_runs_a_sweep_on_a_local_ray_instance(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'peftbench[cluster]')")
    from peftbench.validate import load_suite_config
    from peftbench.sweep import run_suite
    from peftbench.sweep.executors import ExecutorOptions

    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as exc:  # e.g. no /dev/shm or a sandbox forbidding its sockets
        pytest.skip(f"a local Ray instance cannot start here: {exc}")
    try:
        suite = load_suite_config(suite_yaml(tmp_path, [0, 1, 2, 3], max_steps=3))
        results = run_suite(suite, show_progress=False, executor="ray", options=ExecutorOptions(show_progress=False))
    finally:
        ray.shutdown()
    runs = [r for r in results if r["method"] != "base"]
    assert len(runs) == 4 and all(r["status"] == "done" for r in runs)
    assert {r["worker_pid"] for r in runs}.isdisjoint({os.getpid()})  # each run ran in a Ray worker
    rows = ResultStore(tmp_path / "runs" / "kill" / STORE_FILE).rows()
    assert sorted(r["run_id"] for r in rows if r["method"] != "base") == sorted(r["run_id"] for r in runs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the failing run is QLoRA refused on a machine without CUDA")
def test_local_workers_report_progress_and_failures_as_runs_finish(tmp_path, capsys):
    from io import StringIO

    from rich.console import Console

    from peftbench.validate import load_suite_config
    from peftbench.sweep import run_suite
    from peftbench.sweep.executors import ExecutorOptions

    raw = yaml.safe_load(suite_yaml(tmp_path, [0], max_steps=2).read_text())
    raw["methods"].append({"name": "qlora"})  # refused on CPU: a run that fails
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(raw))
    log = StringIO()
    results = run_suite(load_suite_config(tmp_path / "suite.yaml"), console=Console(file=log, width=300),
                        options=ExecutorOptions(workers=2, show_progress=True))
    statuses = sorted(r["status"] for r in results if r.get("method") != "base")
    assert statuses == ["done", "failed"]
    failed = next(r for r in results if r["status"] == "failed")
    assert f"run {failed['run_id']} failed:" in log.getvalue() and "CUDA" in log.getvalue()
    bar = capsys.readouterr().err
    assert "runs" in bar and "2/2" in bar and "1 failed" in bar


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU rule; on CUDA it is one worker per GPU")
def test_cpu_workers_follow_cores_runs_and_memory(monkeypatch):
    from types import SimpleNamespace

    import psutil

    from peftbench.cli import packaged_config
    from peftbench.validate import load_suite_config
    from peftbench.sweep.executors import RUN_OVERHEAD_BYTES, RUNS_PER_CPU_WORKER, default_workers

    runs = load_suite_config(packaged_config("all-methods")).expand()  # 66 runs of the 3.1M micro model
    assert len(runs) == 66 and default_workers(runs) == min(os.cpu_count(), 66 // RUNS_PER_CPU_WORKER)
    few = runs[: 2 * RUNS_PER_CPU_WORKER - 1]
    assert default_workers(few) == 1  # too few runs to pay for a second worker's start
    assert default_workers(runs[: 2 * RUNS_PER_CPU_WORKER]) == min(os.cpu_count(), 2)
    rl = [r.model_copy(update={"train": r.train.model_copy(update={"mode": "grpo"})}) for r in runs[:6]]
    assert default_workers(rl) == min(os.cpu_count(), 2)  # RL runs take minutes: 3 each pay for a worker
    unknown = [r.model_copy(update={"model": r.model.model_copy(update={"name": "no/such-model-anywhere"})}) for r in runs]
    assert default_workers(unknown) == 1  # size unknown offline
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=3 * RUN_OVERHEAD_BYTES))
    assert default_workers(runs) == 1  # half of 3 GiB holds one run's 1 GiB + weights, not two


def test_a_run_killed_twice_is_still_run_again_and_the_sweep_completes(tmp_path):
    """Killed, restarted, killed again on the same run, restarted: the sweep finishes with
    one row per run, every run done, and the run finished before the kills untouched."""
    root = tmp_path / "runs" / "kill"
    path = suite_yaml(tmp_path, [0, 1], max_steps=150)

    def training(seed):
        def check():
            logs = [p for p in root.glob(f"*-s{seed}-*/train_log.jsonl") if p.stat().st_size > 0]
            return logs and logs[0].parent
        return check

    first = sweep(path)
    finished_dir = wait_for(lambda: next((p.parent for p in root.glob("*-s0-*/metrics.json")), None))
    stamp = (finished_dir / "metrics.json").stat().st_mtime_ns
    victim = wait_for(training(1))
    for attempt in range(2):  # the same run, killed in two sweeps in a row
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        assert not (victim / "metrics.json").exists()
        assert ResultStore(root / STORE_FILE).get(victim.name)["status"] == "running"
        first = sweep(path)
        if attempt == 0:
            wait_for(lambda: (victim / "train_log.jsonl").is_file() and (victim / "train_log.jsonl").stat().st_size > 0
                     and ResultStore(root / STORE_FILE).get(victim.name)["attempts"] == 2)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    store = ResultStore(root / STORE_FILE)
    rows = [r for r in store.rows() if r["method"] != "base"]
    assert sorted(r["run_id"] for r in rows) == sorted([finished_dir.name, victim.name])
    assert all(r["status"] == "done" for r in rows)
    assert store.get(victim.name)["attempts"] == 3 and store.get(finished_dir.name)["attempts"] == 1
    assert (finished_dir / "metrics.json").stat().st_mtime_ns == stamp
    assert not list(root.rglob("*.tmp"))


def test_failed_runs_wait_for_retry_failed_and_killed_ones_do_not(tmp_path):
    from peftbench.validate import validate_suite_config
    from peftbench.sweep import run_suite

    suite = validate_suite_config({
        "name": "fails", "model": {"name": "tiny-random-llama", "device": "cpu"},
        "methods": ["qlora"],  # needs CUDA: it raises when the run starts, on this CPU machine
        "tasks": [{"name": "test-parity", "max_train": 16, "max_eval": 4}],
        "train": {"max_steps": 1}, "output_dir": str(tmp_path / "runs")})
    store = ResultStore(tmp_path / "runs" / "fails" / STORE_FILE)

    def attempts():
        (row,) = [r for r in store.rows() if r["method"] != "base"]
        return row["status"], row["attempts"]

    run_suite(suite, show_progress=False)
    assert attempts() == ("failed", 1)
    run_suite(suite, show_progress=False)
    assert attempts() == ("failed", 1)  # a failure keeps its reason until asked
    run_suite(suite, show_progress=False, retry_failed=True)
    assert attempts() == ("failed", 2)


def test_a_start_removes_what_killed_writers_left_and_keeps_live_ones(tmp_path):
    from peftbench.io import _temporary_prefix, remove_stale_temporaries

    folder = tmp_path / "runs" / "s"
    folder.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ours = folder / (_temporary_prefix(folder / "metrics.json") + "abc.tmp")
    theirs = folder / ours.name.replace(f"-{os.getpid()}.", f"-{dead.pid}.")
    ours.write_text("being written")
    theirs.mkdir()
    (theirs / "adapter.safetensors").write_text("half")
    assert remove_stale_temporaries(tmp_path / "runs") == [theirs]
    assert ours.exists() and not theirs.exists()


def test_two_sweeps_of_one_suite_at_once_both_finish_every_run_once(tmp_path):
    path = suite_yaml(tmp_path, [0, 1, 2], max_steps=10)
    first, second = sweep(path), sweep(path)
    outputs = [first.communicate(timeout=300), second.communicate(timeout=300)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    store = ResultStore(tmp_path / "runs" / "kill" / STORE_FILE)
    rows = [r for r in store.rows() if r["method"] != "base"]
    assert len(rows) == 3 and all(r["status"] == "done" and r["attempts"] == 1 for r in rows)
    # the runs were shared out, and whichever sweep ran out of its own waited for the other's
    assert {r["metrics"]["worker_pid"] for r in rows} <= {first.pid, second.pid}
    assert any("waiting for" in err for _, err in outputs) or len({r["metrics"]["worker_pid"] for r in rows}) == 1
    (base,) = (tmp_path / "runs" / "kill").glob("base-*")
    assert len(list(base.glob("*.tmp"))) == 0 and (base / "metrics.json").is_file()


def test_workers_that_die_before_claiming_a_run_stop_the_sweep_with_an_error(tmp_path):
    """Workers that exit before claiming anything (an import error, a task registered only in
    the parent process) leave every run pending: the sweep says so, not start them forever."""
    from rich.console import Console

    from peftbench.errors import PeftbenchError
    from peftbench.sweep.executors import ExecutorOptions
    from peftbench.sweep.runner import _execute_all
    from peftbench.validate import load_suite_config

    runs = load_suite_config(suite_yaml(tmp_path, [0, 1])).expand()
    store = ResultStore(tmp_path / STORE_FILE)
    rounds = []

    def workers_that_die(pending, store_path, options, console):
        rounds.append(len(pending))

    with pytest.raises(PeftbenchError, match="without starting any of the 2 runs"):
        _execute_all(runs, store, workers_that_die, ExecutorOptions(), Console(quiet=True), max_attempts=2)
    assert rounds == [2]
    assert {store.get(r["run_id"])["status"] for r in store.rows()} == {"pending"}


def test_local_workers_take_the_costliest_runs_first():
    """Soft prompts pad their batches and full fine-tuning updates every weight: both take longer
    than LoRA, so they go first and the workers end together; a task with more training
    examples goes before a smaller one. Equal costs keep the grid's order."""
    from peftbench.cli import packaged_config
    from peftbench.sweep.estimate import longest_first, relative_cost
    from peftbench.validate import load_suite_config

    suite = load_suite_config(packaged_config("quickstart"))
    by_method = {}
    for cfg in suite.expand():
        by_method.setdefault(cfg.method.name, []).append(cfg)
    lora, prompt, full = (by_method[name][0] for name in ("lora", "prompt", "full"))
    assert relative_cost(prompt) > relative_cost(lora) and relative_cost(full) > relative_cost(lora)
    bigger = lora.model_copy(update={"train": lora.train.model_copy(update={"max_steps": 4 * (lora.train.max_steps or 100)})})
    assert relative_cost(bigger) > relative_cost(lora)
    ordered = longest_first([lora, by_method["lora"][1], prompt, full])
    assert ordered[-2:] == [lora, by_method["lora"][1]]  # the two LoRA seeds last, in their order
    assert set(map(id, ordered[:2])) == {id(prompt), id(full)}
