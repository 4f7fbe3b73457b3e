"""`merge --alpha`: points on the path from base (0) to tuned (1) in weight space."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from peftbench.config import validate_run_config
from peftbench.errors import PeftbenchError
from peftbench.models import load_model
from peftbench.run import execute_run, load_run, merge_run, run_dir


def _trained(tmp_path, method):
    cfg = validate_run_config({
        "model": {"name": "tiny-random-llama", "device": "cpu"}, "method": method,
        "task": {"name": "toy-sentiment-choice", "max_train": 64, "max_eval": 8},
        "train": {"max_steps": 10, "batch_size": 16, "lr": 1e-2}, "output_dir": str(tmp_path / "runs"),
    })
    execute_run(cfg, show_progress=False)
    return run_dir(cfg), cfg


def _logits(model, tokenizer):
    inputs = tokenizer(["Review: a dull plot\nSentiment:"], return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits


@pytest.mark.parametrize("method", [{"name": "lora", "target_modules": "all-linear"}, {"name": "full"}])
def test_alpha_zero_is_the_base_and_alpha_one_the_tuned_model(tmp_path, method):
    run, cfg = _trained(tmp_path, method)
    tuned, tokenizer, _ = load_run(run)
    base = _logits(load_model(cfg.model), tokenizer)
    points = {}
    for alpha in (0.0, 0.5, 1.0):
        merge_run(run, tmp_path / f"a{alpha}", alpha=alpha)
        points[alpha] = AutoModelForCausalLM.from_pretrained(tmp_path / f"a{alpha}")
    assert (_logits(points[0.0], tokenizer) - base).abs().max() <= 1e-4
    assert (_logits(points[1.0], tokenizer) - _logits(tuned, tokenizer)).abs().max() <= 1e-4
    assert (_logits(points[0.0], tokenizer) - _logits(points[1.0], tokenizer)).abs().max() > 1e-3  # it moved
    w = {a: dict(m.named_parameters())["model.layers.0.mlp.up_proj.weight"] for a, m in points.items()}
    assert torch.allclose(w[0.5], (w[0.0] + w[1.0]) / 2, atol=1e-6)  # the midpoint is the midpoint


def test_rotation_methods_refuse_a_dense_path(tmp_path):
    run, _ = _trained(tmp_path, {"name": "oft", "block_size": 4})
    with pytest.raises(PeftbenchError, match="'rotation' interpolation path .* not implemented"):
        merge_run(run, tmp_path / "half", alpha=0.5)
    assert not (tmp_path / "half").exists()
