"""`merge --alpha`: points on the path from base (0) to tuned (1) in weight space."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from peftbench.validate import validate_run_config
from peftbench.errors import PeftbenchError
from peftbench.models import load_model
from peftbench.run import execute_run, load_run, merge_run, run_dir


def _logits(model, tokenizer):
    inputs = tokenizer(["Review: a dull plot\nSentiment:"], return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits


def _merged_points(tmp_path, run, alphas):
    points = {}
    for alpha in alphas:
        merge_run(run, tmp_path / f"a{alpha}", alpha=alpha)
        points[alpha] = AutoModelForCausalLM.from_pretrained(tmp_path / f"a{alpha}")
    return points


def _weight(model, name="model.layers.0.self_attn.q_proj.weight"):
    return dict(model.named_parameters())[name].detach()


@pytest.mark.parametrize("method", [
    {"name": "lora", "target_modules": "all-linear"}, {"name": "full"}, {"name": "oft", "block_size": 4},
    {"name": "boft", "block_size": 4},
])
def test_alpha_zero_is_the_base_and_alpha_one_the_tuned_model(tmp_path, method, tiny_run):
    run, cfg = tiny_run(method)
    tuned, tokenizer, _ = load_run(run)
    base = _logits(load_model(cfg.model), tokenizer)
    points = _merged_points(tmp_path, run, (0.0, 1.0))
    assert (_logits(points[0.0], tokenizer) - base).abs().max() <= 1e-4
    assert (_logits(points[1.0], tokenizer) - _logits(tuned, tokenizer)).abs().max() <= 1e-4
    assert (_logits(points[0.0], tokenizer) - _logits(points[1.0], tokenizer)).abs().max() > 1e-3  # it moved


def test_additive_midpoint_is_the_weight_midpoint(tmp_path, tiny_run):
    run, _ = tiny_run({"name": "lora", "target_modules": "all-linear"})
    w = {a: _weight(m, "model.layers.0.mlp.up_proj.weight") for a, m in _merged_points(tmp_path, run, (0.0, 0.5, 1.0)).items()}
    assert torch.allclose(w[0.5], (w[0.0] + w[1.0]) / 2, atol=1e-6)


def test_oft_path_stays_a_rotation_and_scales_the_generator(tmp_path, tiny_run):
    """OFT's point at alpha is W0 rotated by Cayley(sqrt(alpha) Q): the singular values of
    W0 are kept all along the path (a dense-delta midpoint would shrink them), and the
    rotation angle grows with alpha."""
    run, _ = tiny_run({"name": "oft", "block_size": 4, "target_modules": "all-linear"})
    points = _merged_points(tmp_path, run, (0.0, 0.25, 1.0, 1.5))
    w = {a: _weight(m) for a, m in points.items()}
    s0 = torch.linalg.svdvals(w[0.0])
    drift = {a: (torch.linalg.svdvals(w[a]) - s0).abs().max().item() for a in (0.25, 1.0)}
    # peft's Cayley-Neumann series is orthogonal only up to its truncation: tiny drift
    assert max(drift.values()) <= 5e-4
    dense_midpoint = (w[0.0] + w[1.0]) / 2
    assert (torch.linalg.svdvals(dense_midpoint) - s0).abs().max().item() > 10 * drift[1.0]
    distance = {a: (w[a] - w[0.0]).norm().item() for a in (0.25, 1.0, 1.5)}
    assert 0 < distance[0.25] < distance[1.0] < distance[1.5]


def test_rotation_path_refuses_negative_alpha(tmp_path, tiny_run):
    run, _ = tiny_run({"name": "oft", "block_size": 4})
    with pytest.raises(PeftbenchError, match="needs alpha >= 0"):
        merge_run(run, tmp_path / "neg", alpha=-0.5)
    assert not (tmp_path / "neg").exists()


# ---------------------------------------------------------------- scoring the path


def test_best_tradeoff_and_overshoot_on_a_hand_worked_path():
    from peftbench.analysis.tradeoff import best_point

    # balanced value = mean(target gain / best gain, retention / base retention):
    # a=0: (0 + 1)/2 = .5; a=.5: (.8 + .944)/2 = .872; a=1: (1 + .667)/2 = .833 -> best a=.5
    path = [{"alpha": 0.0, "target": 0.1, "retention": 0.9}, {"alpha": 0.5, "target": 0.5, "retention": 0.85},
            {"alpha": 1.0, "target": 0.6, "retention": 0.6}]
    best = best_point(path)
    assert best["best_alpha"] == 0.5 and best["overshoot"] is True
    assert best["value"] == pytest.approx((0.8 + 0.85 / 0.9) / 2)
    assert best["retention_gain_points_over_final"] == pytest.approx(25.0)
    assert best_point(path, "target")["best_alpha"] == 1.0
    # retention barely moves: the end is best, no overshoot
    flat = [{**p, "retention": 0.9} for p in path]
    assert best_point(flat)["best_alpha"] == 1.0 and best_point(flat)["overshoot"] is False
    # a gain of retention below the noise floor is not an overshoot
    assert best_point(path, min_retention_gain_points=30)["overshoot"] is False
    assert best_point([{**p, "retention": None} for p in path])["overshoot"] is None
    # a path that learned nothing has no trade-off: no verdict rather than "the base is best"
    flat_target = [{**p, "target": 0.1 + 0.001 * p["alpha"]} for p in path]
    assert best_point(flat_target)["best_alpha"] is None and "nothing was learned" in best_point(flat_target)["reason"]


def test_path_of_a_run_starts_at_the_base_score_and_ends_at_the_run_score(tmp_path, tiny_run):
    from peftbench.analysis.of_run import PATH_FILE, path_of_run
    from peftbench.validate import validate_retention
    from peftbench.errors import UnknownNameError
    from peftbench.report.build import build_report
    from peftbench.retention import score_retention
    from peftbench.run import evaluate_model

    run, cfg = tiny_run({"name": "lora", "target_modules": "all-linear"})
    retention = validate_retention(["toy-sentiment"])
    with pytest.raises(UnknownNameError, match="trade-off"):
        path_of_run(run, [0.0, 1.0], retention, tradeoff="nope", show_progress=False)
    result = path_of_run(run, [1.0, 0.0, 0.5], retention, show_progress=False)
    points = {p["alpha"]: p for p in result["points"]}
    assert [p["alpha"] for p in result["points"]] == [0.0, 0.5, 1.0]
    assert points[0.0]["target"] == evaluate_model(cfg.model, cfg.task, cfg.eval, show_progress=False)["score"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert points[1.0]["target"] == metrics["eval"]["score"]
    base = score_retention(load_model(cfg.model), load_run(run)[1], retention, cfg.eval)
    assert points[0.0]["retention"] == base["average"]
    assert json.loads((run / PATH_FILE).read_text())["best"] == result["best"]
    _, markdown, _ = build_report(tmp_path / "runs")
    assert "Stability vs plasticity" in markdown.read_text()


def test_merge_casts_to_bf16_after_merging(tmp_path, tiny_run):
    run, _ = tiny_run({"name": "lora", "target_modules": "all-linear"})
    tuned, tokenizer, _ = load_run(run)
    merge_run(run, tmp_path / "bf16", dtype="bf16")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16")
    assert merged.dtype == torch.bfloat16
    diff = (_logits(merged, tokenizer).float() - _logits(tuned, tokenizer)).abs().max()
    assert diff <= 0.05 * _logits(tuned, tokenizer).abs().max()  # bf16's 8-bit mantissa, not a different model
    with pytest.raises(PeftbenchError, match="unknown dtype"):
        merge_run(run, tmp_path / "int8", dtype="int8")


def test_checkpoints_are_scored_along_training(tmp_path):
    from peftbench.analysis.trajectory import TRAJECTORY_FILE
    from peftbench.run import evaluate_model

    cfg = validate_run_config({
        "model": {"name": "tiny-random-llama", "device": "cpu"}, "method": {"name": "lora", "target_modules": "all-linear"},
        "task": {"name": "toy-sentiment-choice", "max_train": 64, "max_eval": 8},
        "train": {"max_steps": 10, "batch_size": 16, "lr": 1e-2, "checkpoint_every": 4},
        "retention": {"tasks": ["toy-sentiment"], "max_eval": 8}, "output_dir": str(tmp_path / "runs"),
    })
    metrics = execute_run(cfg, show_progress=False)
    points = json.loads((run_dir(cfg) / TRAJECTORY_FILE).read_text())
    assert [p["step"] for p in points] == [0, 4, 8, 10]  # base, checkpoints, final
    assert points[0]["target"] == evaluate_model(cfg.model, cfg.task, cfg.eval, show_progress=False)["score"]
    assert points[-1]["target"] == metrics["eval"]["score"]
    assert points[-1]["retention"] == metrics["retention"]["tuned"]["average"]
    assert points[0]["retention"] == metrics["retention"]["base"]["average"]
    # scoring checkpoints does not change the training
    plain = validate_run_config({**cfg.model_dump(mode="json"), "train": {**cfg.train.model_dump(), "checkpoint_every": None}})
    assert execute_run(plain, show_progress=False)["train"]["final_loss"] == pytest.approx(
        metrics["train"]["final_loss"], rel=1e-5)
