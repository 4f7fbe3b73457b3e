"""Measured costs: FLOPs added by a method, peak training memory, PSCP of a run."""

import pytest
import torch
from torch import nn

from peftbench.cost.measure import PeakMemory, forward_flops
from peftbench.cost.pscp import pscp


class TwoLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.a, self.b = nn.Linear(8, 16, bias=False), nn.Linear(16, 4, bias=False)

    def forward(self, input_ids):
        return self.b(self.a(self.embed(input_ids)))


def test_forward_flops_match_the_analytic_count():
    # two matmuls over 512 tokens: 2 * 512 * (8*16 + 16*4) multiply-adds counted as 2 FLOPs each
    assert forward_flops(TwoLinear()) == 2 * 512 * (8 * 16 + 16 * 4)


def test_peak_memory_sees_a_large_allocation_during_the_block():
    with PeakMemory(torch.device("cpu"), interval_s=0.005) as memory:
        start = memory.peak_bytes
        block = torch.ones(64 * 1024 * 1024 // 4 * 4)  # 256 MiB of float32, touched
        block.add_(1)
        import time

        time.sleep(0.05)
        del block
    assert memory.kind == "cpu_peak_rss"
    assert memory.peak_bytes - start >= 200 * 1024 * 1024


@pytest.mark.parametrize("method,params,adds_flops", [
    ("lora", {"target_modules": ["q_proj", "v_proj"]}, True),  # unmerged low-rank products
    ("prompt", {"num_virtual_tokens": 8}, True),  # 8 more positions through every layer
    ("lntuning", {}, False),  # scales in place: no extra operations
])
def test_runs_record_extra_flops_memory_and_pscp(tmp_path, method, params, adds_flops):
    from conftest import run_config
    from peftbench.run import execute_run

    cfg = run_config(tmp_path, method={"name": method, **params}, train={"max_steps": 2, "batch_size": 4})
    metrics = execute_run(cfg, show_progress=False)
    cost = metrics["cost"]
    assert (cost["extra_inference_tflops"] > 0) == adds_flops
    assert cost["base_inference_tflops"] > 0
    assert cost["peak_memory_kind"] == "cpu_peak_rss" and cost["peak_memory_bytes"] > 10 * 1024 * 1024
    assert cost["inference"]["latency_s_per_sample"] > 0
    expected = pscp(100 * metrics["eval"]["score"], cost["trainable_params"], cost["extra_inference_tflops"],
                    cost["peak_memory_bytes"] / 1e9)
    assert metrics["pscp"] == pytest.approx(expected)


def test_a_process_counts_each_model_structures_flops_once(tmp_path, monkeypatch):
    from conftest import run_config
    import peftbench.cost.measure as measure
    import peftbench.run as run

    counted = []
    real = measure.forward_flops
    monkeypatch.setattr(measure, "forward_flops", lambda model, *a: counted.append(type(model).__name__) or real(model, *a))
    monkeypatch.setattr(measure, "_COUNTED", {})
    costs = {}
    for seed, model, method in ((0, "tiny-random-llama", "lntuning"), (1, "tiny-random-llama", "lntuning"),
                                (0, "micro", "lntuning"), (0, "micro", "lora")):
        cfg = run_config(tmp_path, model={"name": model}, method={"name": method},
                         train={"max_steps": 1, "batch_size": 4, "seed": seed})
        costs[seed, model, method] = run.execute_run(cfg, show_progress=False)["cost"]
    lntuning = [c for (_, _, m), c in costs.items() if m == "lntuning"]
    assert all(c["extra_inference_tflops"] == 0 for c in lntuning)  # the cached base count is this model's own
    assert lntuning[0]["base_inference_tflops"] == lntuning[1]["base_inference_tflops"] != lntuning[2]["base_inference_tflops"]
    assert costs[0, "micro", "lora"]["extra_inference_tflops"] > 0  # its low-rank products: another structure, its own count
    # two bases, then each tuned structure once: lntuning on each model, lora on micro (seed 1 reuses seed 0's)
    assert len(counted) == 2 + 3


def test_structure_key_ignores_weight_values_and_sees_shapes():
    from peftbench.cost.measure import structure_key

    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    assert structure_key(a) == structure_key(b)  # different random weights
    assert structure_key(a) != structure_key(torch.nn.Linear(4, 5))
    assert structure_key(a) != structure_key(torch.nn.Linear(4, 3, bias=False))
