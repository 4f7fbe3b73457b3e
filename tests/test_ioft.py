"""iOFT: layer-wise rescaling of OFT rotation generators into an ordinary adapter."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from peftbench.analysis.ioft import SAFE_LAYERS, ioft_run, rotation_strengths
from peftbench.validate import validate_run_config
from peftbench.errors import PeftbenchError
from peftbench.run import execute_run, load_run, merge_run, run_dir


@pytest.fixture(scope="module")
def oft_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ioft")
    cfg = validate_run_config({
        "model": {"name": "micro", "device": "cpu"}, "method": {"name": "oft", "block_size": 16},
        "task": {"name": "micro-med", "max_train": 128, "max_eval": 8},
        "train": {"max_steps": 10, "batch_size": 16, "lr": 1e-2}, "output_dir": str(tmp / "runs"),
    })
    execute_run(cfg, show_progress=False)
    return run_dir(cfg)


def _logits(model, tokenizer):
    inputs = tokenizer(["Symptoms: nupo, lamu. Which diagnosis?\nAnswer:"], return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits


@pytest.mark.parametrize("mode", ["safescale", "minscale"])
def test_rescaling_flattens_rotation_strength_to_its_target(oft_run, tmp_path, mode):
    before = rotation_strengths(load_run(oft_run)[0])
    out = ioft_run(oft_run, tmp_path / mode, mode)
    rescaled, tokenizer, _ = load_run(out)  # the new adapter reloads like any run's
    after = rotation_strengths(rescaled)
    for kind, strengths in before.items():
        layers = sorted(strengths)
        target = (sum(strengths[l] for l in layers[:SAFE_LAYERS]) / len(layers[:SAFE_LAYERS]) if mode == "safescale"
                  else min(strengths.values()))
        assert len(set(strengths.values())) > 1  # trained layers rotate by different amounts
        assert all(after[kind][l] == pytest.approx(target, rel=1e-5) for l in layers)
    record = json.loads((out / "ioft.json").read_text())
    assert record["mode"] == mode and record["source_run"] == str(oft_run)
    merge_run(out, tmp_path / f"{mode}-merged")  # and merges into a plain model with the same logits
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / f"{mode}-merged")
    assert (_logits(merged, tokenizer) - _logits(rescaled, tokenizer)).abs().max() <= 1e-4


def test_uniform_factor_zero_is_the_base_and_one_the_run(oft_run, tmp_path):
    from peftbench.models import load_model

    tuned, tokenizer, cfg = load_run(oft_run)
    zero, _, _ = load_run(ioft_run(oft_run, tmp_path / "zero", "uniform", 0.0))
    one, _, _ = load_run(ioft_run(oft_run, tmp_path / "one", "uniform", 1.0))
    assert (_logits(zero, tokenizer) - _logits(load_model(cfg.model), tokenizer)).abs().max() <= 1e-5
    assert (_logits(one, tokenizer) - _logits(tuned, tokenizer)).abs().max() <= 1e-6


def test_ioft_refuses_what_it_cannot_do(oft_run, tmp_path):
    with pytest.raises(PeftbenchError, match="needs --factor"):
        ioft_run(oft_run, tmp_path / "x", "uniform")
    with pytest.raises(PeftbenchError, match="--factor is for uniform"):
        ioft_run(oft_run, tmp_path / "y", "safescale", 0.5)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
