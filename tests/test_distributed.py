"""One run trained by several processes under `accelerate launch` (gloo on CPU): it must
reach the weights one process reaches, and only the main process writes the run."""

import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from peftbench.io import read_json
from peftbench.train.distributed import Solo, loss_tokens

from test_cli import cli

ACCELERATE = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", "--multi_gpu", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no"]


def run_yaml(tmp_path, name: str, **method):
    raw = {
        "suite": "ddp",
        "model": {"name": "tiny-random-llama", "device": "cpu"},
        "method": {"name": "lora", "target_modules": "all-linear", "dropout": 0.0, **method},
        "task": {"name": "toy-sentiment", "max_eval": 16},
        "train": {"lr": 5e-3, "batch_size": 16, "max_steps": 6, "logging_steps": 1, "batching": "packed",
                  "loss_on_prompt": True},  # prompts differ in length: the processes hold unequal token shares
        "eval": {"max_new_tokens": 8},
        "output_dir": str(tmp_path / name),
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def the_run(tmp_path, name: str):
    (found,) = list((tmp_path / name / "ddp").iterdir())
    return found


@pytest.mark.slow
def test_two_processes_reach_the_weights_of_one_and_only_the_main_one_writes(tmp_path):
    one = cli("train", str(run_yaml(tmp_path, "one")), "--no-progress")
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([*ACCELERATE, "--num_processes", "2", "-m", "peftbench", "train",
                          str(run_yaml(tmp_path, "two")), "--no-progress"], capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("eval.accuracy") == one.stdout.count("eval.accuracy") == 1  # printed by the main process only
    solo, team = read_json(the_run(tmp_path, "one") / "metrics.json"), read_json(the_run(tmp_path, "two") / "metrics.json")
    assert solo["train"]["processes"] == 1 and team["train"]["processes"] == 2
    assert team["run_id"] == solo["run_id"]  # same run: how many processes trained it is not its identity
    assert team["train"]["samples"] == solo["train"]["samples"] == 6 * 16
    # each process's loss weighted by its share of the batch's answer tokens: the same objective
    log = lambda name: [r["loss"] for r in map(yaml.safe_load, (the_run(tmp_path, name) / "train_log.jsonl").read_text().splitlines())]
    assert log("two") == pytest.approx(log("one"), rel=1e-4)
    assert log("two")[-1] < log("two")[0]
    a = load_file(the_run(tmp_path, "one") / "adapter" / "adapter_model.safetensors")
    b = load_file(the_run(tmp_path, "two") / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=2e-5, rtol=1e-3), name
    moved = max((a[n] - b[n]).abs().max().item() for n in a)
    assert moved < 2e-5
    assert team["eval"]["samples"] == 16  # the main process evaluated the whole eval split


def test_solo_passes_every_call_through():
    model = torch.nn.Linear(2, 1)
    solo = Solo(model)
    batch = [object(), object()]
    loss = torch.tensor(2.5, requires_grad=True)
    assert solo.model is model and solo.shard(batch) is batch
    assert solo.weighted(loss, batch, batch) is loss and solo.mean(loss) == 2.5


def test_loss_tokens_count_labels_after_the_causal_shift():
    from peftbench.prompting import IGNORE_INDEX, EncodedExample

    example = EncodedExample(input_ids=[1, 2, 3, 4, 5], labels=[7, IGNORE_INDEX, IGNORE_INDEX, 4, 5])
    # the first label never carries a loss: no position predicts a row's first token
    assert loss_tokens([example, example]) == 4


def test_a_sweep_under_a_launcher_is_refused_with_the_command_to_use(tmp_path, monkeypatch):
    from peftbench.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["run", "quickstart", "--output-dir", str(tmp_path), "--dry-run"]) == 2
