"""Spectral retention/adaptation profiles: checked on matrices where the answer is known,
then on a trained run."""

import json

import pytest
import torch

from peftbench.analysis.of_run import SPECTRAL_FILE, spectral_of_run
from peftbench.analysis.spectral import fluctuation, intruder_dimensions, layer_spectrum, stable_rank
from peftbench.methods import NotMergeableError


def _orthonormal(n, seed):
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed)))
    return q


def _matrix_with_svd(s):
    """W = U diag(s) V^T with known random orthonormal U, V."""
    n = len(s)
    u, v = _orthonormal(n, 1), _orthonormal(n, 2)
    return u @ torch.diag(torch.tensor(s)) @ v.T, u, v


SINGULAR = [10.0, 8.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.8, 0.6, 0.4]


def test_fluctuation_matches_a_hand_worked_example():
    # reflect padding of 1..5: 3 2 [1 2 3 4 5] 4 3 -> moving averages 2.2 2.4 3 3.6 3.8
    # |x - MA| = 1.2 .4 0 .4 1.2 -> mean 0.64
    assert fluctuation(torch.tensor([1.0, 2, 3, 4, 5])) == pytest.approx(0.64)
    assert fluctuation(torch.full((20,), 3.0)) == pytest.approx(0.0)
    spiky = torch.tensor([0.0, 0, 0, 5, 0, 0, 0, 0])
    assert fluctuation(spiky) > fluctuation(torch.linspace(0, 5, 8))


def test_rank_one_update_has_stable_rank_one():
    w, _, _ = _matrix_with_svd(SINGULAR)
    update = torch.outer(torch.randn(12), torch.randn(12))
    assert stable_rank(update) == pytest.approx(1.0, abs=1e-5)
    assert layer_spectrum("w", w, w + update).stable_rank == pytest.approx(1.0, abs=1e-4)
    spread = torch.diag(torch.ones(12))  # equal energy in 12 directions
    assert stable_rank(spread) == pytest.approx(12.0, abs=1e-4)
    assert stable_rank(torch.zeros(3, 3)) is None


def test_update_orthogonal_to_top_directions_leaves_their_retention_alone():
    w, u, v = _matrix_with_svd(SINGULAR)
    k = 10  # act only on the 11th singular pair, orthogonal to the top 10
    update = 2.0 * torch.outer(u[:, k], v[:, k])
    spectrum = layer_spectrum("w", w, w + update)
    retention, adaptation = torch.tensor(spectrum.retention), torch.tensor(spectrum.adaptation)
    assert retention[:k].abs().max() < 1e-4
    assert retention[k] == pytest.approx(2.0, abs=1e-4)  # that singular value moved by exactly 2
    assert adaptation[:k].abs().max() < 1e-4 and adaptation[k] == pytest.approx(2.0, abs=1e-4)


def test_pure_rotation_keeps_singular_values_and_left_vectors_but_turns_right_vectors():
    w, _, v = _matrix_with_svd(SINGULAR)
    rotation = _orthonormal(12, 7)
    w_ft = w @ rotation  # rotates the input space, as OFT does
    assert torch.allclose(torch.linalg.svdvals(w_ft), torch.tensor(SINGULAR), atol=1e-4)
    spectrum = layer_spectrum("w", w, w_ft)
    assert spectrum.intruder_dimensions == 0  # the output-side singular vectors are untouched
    # the i-th right singular vector of W R is R^T v_i: alignment |v_i . R^T v_i|
    expected = (v * (rotation.T @ v)).sum(dim=0).abs()
    assert torch.allclose(torch.tensor(spectrum.alignment), expected, atol=1e-4)
    assert torch.tensor(spectrum.alignment).mean() < 0.9  # a random rotation turns them


def test_a_large_update_in_a_new_direction_is_an_intruder_dimension():
    n = 40
    w, u, _ = _matrix_with_svd([float(n - i) / 4 for i in range(n)])
    assert intruder_dimensions(u, u) == 0
    # a direction mixing the 10 weakest singular directions: it has no pretrained counterpart
    direction = u[:, -10:].sum(dim=1) / 10**0.5
    w_ft = w + 50.0 * torch.outer(direction, torch.randn(n))
    assert layer_spectrum("w", w, w_ft).intruder_dimensions == 1


def test_spectral_analysis_of_a_lora_run(tiny_run):
    run, _ = tiny_run({"name": "lora", "r": 2, "target_modules": ["q_proj", "v_proj"]})
    result = spectral_of_run(run)
    stored = json.loads((run / SPECTRAL_FILE).read_text())
    assert stored["summary"] == result["summary"]
    names = [layer["name"] for layer in result["layers"]]
    assert names and all(n.endswith(("q_proj.weight", "v_proj.weight")) for n in names)
    # a rank-2 LoRA update has stable rank between 1 and 2
    assert all(1.0 <= layer["stable_rank"] <= 2.0 + 1e-4 for layer in result["layers"])
    assert len(result["mean_profiles"]["retention"]) == 100
    # the representations moved, a little: measured on the run's scored prompts, every layer
    moved = result["representations"]
    assert moved["prompts"] > 0 and len(moved["per_layer"]) == 3  # embeddings + the tiny model's 2 blocks
    assert 0.0 < result["summary"]["cka"] <= 1.0 and 0.0 <= result["summary"]["procrustes"] < 1.5
    assert result["summary"]["spectral_change"] > 0


def test_spectral_analysis_refuses_soft_prompts(tiny_run):
    run, _ = tiny_run({"name": "prompt", "num_virtual_tokens": 2})
    with pytest.raises(NotMergeableError, match="soft prompts"):
        spectral_of_run(run)


def test_a_suite_analysis_block_analyses_every_mergeable_run(tmp_path):
    from peftbench.analysis.of_run import PATH_FILE
    from peftbench.validate import validate_suite_config
    from peftbench.errors import ConfigError
    from peftbench.report.build import build_report
    from peftbench.sweep.runner import run_suite

    raw = {
        "name": "geo", "model": {"name": "tiny-random-llama", "device": "cpu"},
        "methods": [{"name": "lora", "target_modules": "all-linear"}, {"name": "prompt", "num_virtual_tokens": 2},
                    {"name": "lntuning"}],
        "tasks": [{"name": "toy-sentiment-choice", "max_train": 32, "max_eval": 8}],
        "train": {"max_steps": 4, "batch_size": 8, "lr": 1e-2}, "output_dir": str(tmp_path / "runs"),
        "retention": {"tasks": ["toy-sentiment"], "max_eval": 8},
        "analysis": {"spectral": True, "interpolate": "0:1:0.5"},
    }
    with pytest.raises(ConfigError, match="trade-off"):
        validate_suite_config({**raw, "analysis": {"tradeoff": "nope"}})
    with pytest.raises(ConfigError, match="alphas"):
        validate_suite_config({**raw, "analysis": {"interpolate": "0:1"}})
    run_suite(validate_suite_config(raw), show_progress=False)
    runs = {p.name.split("-")[0]: p for p in (tmp_path / "runs" / "geo").iterdir() if (p / "config.yaml").exists()}
    assert (runs["lora"] / SPECTRAL_FILE).is_file()
    path = json.loads((runs["lora"] / PATH_FILE).read_text())
    assert [p["alpha"] for p in path["points"]] == [0.0, 0.5, 1.0] and path["best"]["tradeoff"] == "balanced"
    assert not (runs["prompt"] / SPECTRAL_FILE).exists()  # soft prompts: nothing to analyse
    # LN tuning changes no weight matrix: no spectrum, but its path is walked and the sweep goes on
    assert not (runs["lntuning"] / SPECTRAL_FILE).exists() and (runs["lntuning"] / PATH_FILE).is_file()
    _, markdown, _ = build_report(tmp_path / "runs" / "geo")
    text = markdown.read_text()
    assert "spectral-toy-sentiment-choice.png" in text and "Stability vs plasticity" in text


def test_representation_measures_on_hand_worked_matrices():
    from peftbench.analysis.representations import (gram_distortion, linear_cka, procrustes_distance,
                                                    relative_spectral_change)

    x = torch.randn(20, 6, generator=torch.Generator().manual_seed(0))
    turned = 3.0 * x @ _orthonormal(6, 5) + 7.0  # rotated, scaled, shifted: the same geometry
    assert linear_cka(x, turned) == pytest.approx(1.0)
    assert procrustes_distance(x, turned) == pytest.approx(0.0, abs=1e-6)
    assert gram_distortion(x, turned) == pytest.approx(0.0, abs=1e-6)
    # two orthogonal centred directions over 3 examples: x = (1, 0, -1), y = (1, -2, 1)
    a, b = torch.tensor([[1.0], [0.0], [-1.0]]), torch.tensor([[1.0], [-2.0], [1.0]])
    assert linear_cka(a, b) == pytest.approx(0.0)
    assert procrustes_distance(a, b) == pytest.approx(2 ** 0.5)  # the largest distance there is
    assert gram_distortion(a, b) == pytest.approx(2 ** 0.5)  # ||K_a - K_b||^2 = 1 + 1 - 2 cos^2
    w = torch.diag(torch.tensor([3.0, 4.0]))
    assert relative_spectral_change(w, w @ _orthonormal(2, 3)) == pytest.approx(0.0, abs=1e-6)
    assert relative_spectral_change(w, 2 * w) == pytest.approx(1.0)
    assert layer_spectrum("w", w, 2 * w).spectral_change == pytest.approx(1.0)
