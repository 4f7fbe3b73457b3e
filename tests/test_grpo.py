"""RL with verifiable rewards: the task's grader as reward, TRL's GRPOTrainer as the loop."""

import json

import pytest
import torch

from peftbench.validate import validate_run_config
from peftbench.errors import ConfigError
from peftbench.models import load_model
from peftbench.run import execute_run, load_run, run_dir, run_id
from peftbench.tasks import TASKS
from peftbench.train.grpo import reward_function


def test_rewards_are_the_tasks_own_grades():
    math = reward_function(TASKS.get("micro-math"))
    # worked solution graded on its final number; a bare wrong number earns nothing
    assert math(prompts=["p"] * 3, completions=[" 7 + 5 = 12.", " 12", " 7 + 5 = 13."], reference=["12"] * 3) == [1.0, 1.0, 0.0]
    sentiment = reward_function(TASKS.get("micro-sentiment"))  # classification: the generated label must match
    assert sentiment(prompts=["p"] * 3, completions=[" negative", " Negative.\nmore", " positive"],
                     reference=[" negative"] * 3) == [1.0, 1.0, 0.0]
    code = reward_function(TASKS.get("micro-code"))  # unit tests run in the sandbox
    example = TASKS.get("micro-code").examples("test", 1)[0]
    assert code(prompts=["p"] * 2, completions=[example.answer, " def f(x): return None"],
                reference=[example.reference] * 2) == [1.0, 0.0]


def _grpo_run(tmp_path, method, **grpo):
    cfg = validate_run_config({
        "model": {"name": "micro", "device": "cpu"}, "method": method,
        "task": {"name": "micro-math", "max_train": 32, "max_eval": 16},
        "train": {"mode": "grpo", "max_steps": 3, "batch_size": 4, "lr": 5e-3,
                  "grpo": {"num_generations": 4, "max_completion_length": 12, **grpo}},
        "eval": {"batch_size": 16, "max_new_tokens": 12}, "output_dir": str(tmp_path / "runs"),
    })
    return cfg, execute_run(cfg, show_progress=False)


def _logits(model, tokenizer):
    ids = tokenizer(["Ann has 5 pens. Ann gets 2 more. How many pens does Ann have now?\nAnswer:"], return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits


def test_grpo_trains_an_adapter_that_reloads(tmp_path):
    cfg, metrics = _grpo_run(tmp_path, {"name": "lora", "target_modules": "all-linear"}, sft_warmup_steps=2)
    assert metrics["status"] == "done" and metrics["train"]["mode"] == "grpo"
    assert metrics["train"]["steps"] == 5  # 2 supervised warm-up steps, then 3 GRPO steps
    log = [json.loads(line) for line in (run_dir(cfg) / "train_log.jsonl").read_text().splitlines()]
    rl_records = [r for r in log if "reward" in r]
    assert len(rl_records) == 3 and all(0.0 <= r["reward"] <= 1.0 and "kl" in r for r in rl_records)
    tuned, tokenizer, _ = load_run(run_dir(cfg))
    base = load_model(cfg.model)
    assert (_logits(tuned, tokenizer) - _logits(base, tokenizer)).abs().max() > 1e-4  # the adapter learned something


def test_grpo_after_a_warm_up_takes_its_own_steps_and_learning_rate(tmp_path):
    """max_steps = warm-up + RL steps gives the SFT and the GRPO run of one config the same
    total steps; the RL phase runs at grpo.lr, not the supervised rate (the Trainer takes
    the optimiser's own rates, so those must be rescaled)."""
    for method in ({"name": "lora", "target_modules": "all-linear"}, {"name": "loraplus"}):  # AdamW; LoRA+'s own
        cfg, metrics = _grpo_run(tmp_path, method, sft_warmup_steps=2, rl_steps=1, lr=1e-4)
        assert metrics["status"] == "done" and metrics["train"]["steps"] == 3  # 2 supervised + 1 RL, not 2 + 3
        log = [json.loads(line) for line in (run_dir(cfg) / "train_log.jsonl").read_text().splitlines()]
        rl_records = [r for r in log if "reward" in r]
        assert len(rl_records) == 1 and 0 < rl_records[0]["lr"] <= 1e-4 < cfg.train.lr, method


def test_grpo_full_fine_tuning_uses_a_frozen_base_reference(tmp_path):
    """Without an adapter to switch off, TRL reloads the base from the model folder as the
    KL reference; the run completes and the weights moved."""
    cfg, metrics = _grpo_run(tmp_path, {"name": "full"}, sft_warmup_steps=1)
    assert metrics["status"] == "done"
    tuned, tokenizer, _ = load_run(run_dir(cfg))
    assert (_logits(tuned, tokenizer) - _logits(load_model(cfg.model), tokenizer)).abs().max() > 1e-4


def test_grpo_config_is_checked():
    base = {"method": {"name": "lora"}, "task": {"name": "micro-math", "validation_fraction": 0.1}}
    with pytest.raises(ConfigError, match="select_best"):
        validate_run_config({**base, "train": {"mode": "grpo", "select_best": True}})
    with pytest.raises(ConfigError, match="num_generations"):
        validate_run_config({**base, "train": {"mode": "grpo", "grpo": {"num_generations": 1}}})
    # RL settings are not part of a supervised run's identity; they are of an RL run's
    sft = {"model": {"name": "micro"}, "method": {"name": "lora"}, "task": {"name": "micro-math"}}
    other_rl = {**sft, "train": {"grpo": {"num_generations": 8}}}
    assert run_id(validate_run_config(sft)) == run_id(validate_run_config(other_rl))
    assert run_id(validate_run_config({**base, "train": {"mode": "grpo"}})) != run_id(
        validate_run_config({**base, "train": {"mode": "grpo", "grpo": {"num_generations": 8}}}))
    assert run_id(validate_run_config({**base, "train": {"mode": "grpo"}})).startswith("lora-grpo-micro-math-s0-")


def test_a_suite_crosses_methods_with_training_modes():
    from peftbench.validate import validate_suite_config

    suite = validate_suite_config({"methods": ["lora", "full"], "tasks": ["micro-math"], "modes": ["sft", "grpo"]})
    assert sorted((r.method.name, r.train.mode) for r in suite.expand()) == [
        ("full", "grpo"), ("full", "sft"), ("lora", "grpo"), ("lora", "sft")]
    with pytest.raises(ConfigError, match="modes: grpo: .*select_best"):
        validate_suite_config({"methods": ["lora"], "tasks": [{"name": "micro-math", "validation_fraction": 0.1}],
                               "modes": ["sft", "grpo"], "train": {"select_best": True}})


def test_grpo_samples_a_soft_prompt_model_with_its_prompt_inserted_once_per_generation(tmp_path, monkeypatch):
    """TRL samples the completions through peft's generate, whose hooks insert the virtual
    tokens when the KV cache is empty: at the prefill of each generation, never at a
    decoding step (under transformers 5.24's cache keyword they saw no cache and inserted
    them at every step)."""
    from peft import PeftModelForCausalLM

    calls = []  # per call of peft's hook: (a fresh generation, virtual tokens inserted)
    hook = PeftModelForCausalLM.prepare_inputs_for_generation

    def spy(self, *args, **kwargs):
        inputs = hook(self, *args, **kwargs)
        cache = inputs.get("past_key_values", inputs.get("cache"))
        fresh = cache is None or not cache.get_seq_length()
        calls.append((fresh, inputs.get("inputs_embeds") is not None))
        return inputs

    monkeypatch.setattr(PeftModelForCausalLM, "prepare_inputs_for_generation", spy)
    _, metrics = _grpo_run(tmp_path, {"name": "prompt", "num_virtual_tokens": 4})
    assert metrics["status"] == "done"
    assert calls and any(fresh for fresh, _ in calls) and any(not fresh for fresh, _ in calls)
    assert all(inserted == fresh for fresh, inserted in calls)
