"""Shared test setup: offline, a private model cache, and a toy task the tests build."""

from __future__ import annotations

import os
import random
import tempfile

# Set before anything imports transformers, and inherited by CLI subprocesses.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("PEFTBENCH_HOME", tempfile.mkdtemp(prefix="peftbench-home-"))

import pytest  # noqa: E402

from peftbench.validate import validate_run_config  # noqa: E402
from peftbench.tasks import TASKS, Example, Task, register_task  # noqa: E402

PARITY_TASK = "test-parity"


def _parity_split(split: str) -> list[Example]:
    rng = random.Random({"train": 1, "test": 2}[split])
    size = {"train": 256, "test": 64}[split]
    out = []
    for _ in range(size):
        number = rng.randint(0, 999)
        label = "even" if number % 2 == 0 else "odd"
        out.append(Example(prompt=f"Number: {number}\nParity:", answer=f" {label}", choices=(" even", " odd")))
    return out


@pytest.fixture(scope="session", autouse=True)
def parity_task():
    """A task built by the tests themselves: is the number even or odd?"""
    if PARITY_TASK not in TASKS:
        register_task(
            Task(name=PARITY_TASK, description="parity of a number (test task)", load_split=_parity_split,
                 metrics=("accuracy",), scoring="generate")
        )
    yield TASKS.get(PARITY_TASK)


def run_config(tmp_path, **sections):
    """A valid run config on the tiny random llama and the parity task, with overrides."""
    raw = {
        "suite": "test",
        "model": {"name": "tiny-random-llama", "device": "cpu"},
        "method": {"name": "lora", "target_modules": "all-linear"},
        "task": {"name": PARITY_TASK},
        "train": {"epochs": 3, "lr": 5e-3, "batch_size": 16, "logging_steps": 5},
        "eval": {"batch_size": 64, "max_new_tokens": 6},
        "output_dir": str(tmp_path / "runs"),
    }
    for key, value in sections.items():
        replaces = key == "method" and isinstance(value, dict) and value.get("name", "lora") != "lora"
        raw[key] = {**raw[key], **value} if isinstance(raw.get(key), dict) and isinstance(value, dict) and not replaces \
            else value
    return validate_run_config(raw)


@pytest.fixture
def tiny_run(tmp_path):
    """Train a method briefly on tiny-random-llama: `tiny_run(method) -> (run_dir, cfg)`."""
    from peftbench.run import execute_run, run_dir

    def train(method: dict, max_steps: int = 10):
        cfg = validate_run_config({
            "model": {"name": "tiny-random-llama", "device": "cpu"}, "method": method,
            "task": {"name": "toy-sentiment-choice", "max_train": 64, "max_eval": 8},
            "train": {"max_steps": max_steps, "batch_size": 16, "lr": 1e-2}, "output_dir": str(tmp_path / "runs"),
        })
        execute_run(cfg, show_progress=False)
        return run_dir(cfg), cfg

    return train
