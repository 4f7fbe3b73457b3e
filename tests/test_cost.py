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


def test_a_process_counts_each_base_models_flops_once(tmp_path, monkeypatch):
    from conftest import run_config
    import peftbench.run as run

    counted = []
    real = run.forward_flops
    monkeypatch.setattr(run, "forward_flops", lambda model, *a: counted.append(type(model).__name__) or real(model, *a))
    monkeypatch.setattr(run, "_BASE_FLOPS", {})
    base = {}
    for seed, model in ((0, "tiny-random-llama"), (1, "tiny-random-llama"), (0, "micro")):
        cfg = run_config(tmp_path, model={"name": model}, method={"name": "lntuning"},
                         train={"max_steps": 1, "batch_size": 4, "seed": seed})
        cost = run.execute_run(cfg, show_progress=False)["cost"]
        base.setdefault(model, set()).add(cost["base_inference_tflops"])
        assert cost["extra_inference_tflops"] == 0  # the cached base count is this model's own
    assert len(base["tiny-random-llama"]) == 1 and base["micro"] != base["tiny-random-llama"]
    # one count of each base (before the method attaches), one of each tuned model
    assert len(counted) == 2 + 3
