"""LoRA SFT end to end on a random-initialised llama and a task the tests build."""

import pytest
import torch

from conftest import PARITY_TASK, run_config
from peftbench.io import read_json
from peftbench.run import ADAPTER_DIR, execute_base_eval, execute_run, load_run, run_dir
from peftbench.tasks import TASKS

RUN_FILES = {"config.yaml", "metrics.json", "train_log.jsonl", "provenance.json", "predictions.json", ADAPTER_DIR}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cfg = run_config(tmp_path_factory.mktemp("lora"))
    metrics = execute_run(cfg, show_progress=False)
    return cfg, metrics


def test_lora_halves_loss_and_beats_base(trained):
    cfg, metrics = trained
    assert metrics["status"] == "done"
    assert metrics["train"]["final_loss"] <= 0.5 * metrics["train"]["first_loss"]
    base = execute_base_eval(cfg.output_dir, cfg.suite, cfg.model, cfg.task, cfg.eval, show_progress=False)
    assert metrics["eval"]["score"] > base["eval"]["score"]
    assert metrics["eval"]["score"] >= 0.6  # parity is learnable: well above a coin flip


def test_finished_run_has_every_file(trained):
    cfg, metrics = trained
    out = run_dir(cfg)
    assert RUN_FILES <= {p.name for p in out.iterdir()}
    assert (out / ADAPTER_DIR / "adapter_config.json").is_file()
    log = [line for line in (out / "train_log.jsonl").read_text().splitlines() if line]
    assert len(log) >= 3 and {"step", "loss", "lr", "tokens_per_s"} <= set(read_json_line(log[0]))
    prov = read_json(out / "provenance.json")
    assert prov["seed"] == cfg.train.seed and len(prov["data_sha256"]["train"]) == 64
    assert prov["packages"]["torch"] and prov["started"] <= prov["finished"]
    assert metrics["cost"]["trainable_params"] > 0 and metrics["cost"]["adapter_bytes"] > 0
    # what trained it: fp32 on CPU by default, with the model's own attention kernel
    assert (metrics["train"]["precision"], metrics["train"]["attention"]) == ("fp32", "sdpa")


def read_json_line(line):
    import json

    return json.loads(line)


def test_lora_trainable_count_matches_hand_formula(trained):
    _, metrics = trained
    # all-linear on the tiny llama: per layer q(64->64) k(64->32) v(64->32) o(64->64)
    # gate/up (64->128) down (128->64); LoRA adds r*(d_in+d_out) per module, r=8, 2 layers.
    per_layer = sum(8 * (i + o) for i, o in [(64, 64), (64, 32), (64, 32), (64, 64), (64, 128), (64, 128), (128, 64)])
    assert metrics["cost"]["trainable_params"] == 2 * per_layer


def test_reloaded_adapter_reproduces_logits(trained):
    cfg, _ = trained
    from peftbench.methods import METHODS
    from peftbench.models import load_model

    reloaded, tokenizer, _ = load_run(run_dir(cfg))
    batch = tokenizer(["Number: 12\nParity:", "Number: 7\nParity: odd"], return_tensors="pt", padding=True)
    with torch.no_grad():
        again = reloaded(**batch).logits
    # the reload must differ from the untouched base, or the comparison proves nothing
    base = load_model(cfg.model)
    with torch.no_grad():
        base_logits = base(**batch).logits
    assert (again - base_logits).abs().max() > 1e-2
    # and equal a second, independent reload
    second = METHODS.get("lora").load(load_model(cfg.model), run_dir(cfg) / ADAPTER_DIR)
    with torch.no_grad():
        assert (second(**batch).logits - again).abs().max() <= 1e-5


def test_reload_matches_the_in_memory_tuned_model(tmp_path):
    from peftbench.methods import METHODS
    from peftbench.models import load_model, load_tokenizer
    from peftbench.train import train_sft

    cfg = run_config(tmp_path, train={"max_steps": 15})
    method = METHODS.get("lora")
    tokenizer = load_tokenizer(cfg.model)
    model = method.attach(load_model(cfg.model), method.params(cfg.method.params))
    train_sft(model, tokenizer, TASKS.get(PARITY_TASK).examples("train"), cfg.train, show_progress=False)
    method.save(model, tmp_path / "adapter")
    reloaded = method.load(load_model(cfg.model), tmp_path / "adapter")
    batch = tokenizer(["Number: 3\nParity:"], return_tensors="pt")
    with torch.no_grad():
        diff = (model(**batch).logits - reloaded(**batch).logits).abs().max().item()
    assert diff <= 1e-5


def test_same_seed_same_losses(tmp_path):
    a = execute_run(run_config(tmp_path / "a", train={"max_steps": 8}), show_progress=False)
    b = execute_run(run_config(tmp_path / "b", train={"max_steps": 8}), show_progress=False)
    c = execute_run(run_config(tmp_path / "c", train={"max_steps": 8, "seed": 1}), show_progress=False)
    assert a["train"]["final_loss"] == b["train"]["final_loss"]
    assert a["train"]["final_loss"] != c["train"]["final_loss"]


def test_divergence_is_recorded_not_raised(tmp_path):
    # lr 1e20 overflows the weights within two steps: the loss turns NaN.
    cfg = run_config(tmp_path, train={"lr": 1e20, "max_steps": 40})
    metrics = execute_run(cfg, show_progress=False)
    assert metrics["status"] == "diverged"
    assert "nan" in metrics["train"]["reason"] and metrics["train"]["steps"] < 40
    out = run_dir(cfg)
    assert (out / "metrics.json").is_file() and not (out / ADAPTER_DIR).exists()
    assert "eval" not in metrics


def test_finished_run_is_not_redone(trained):
    cfg, metrics = trained
    stamp = (run_dir(cfg) / "metrics.json").stat().st_mtime_ns
    again = execute_run(cfg, show_progress=False)
    assert again == read_json(run_dir(cfg) / "metrics.json")
    assert (run_dir(cfg) / "metrics.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("method,params", [("lora", {"target_modules": "all-linear"}), ("dora", {}), ("ia3", {}),
                                           ("vera", {"r": 16}), ("peft", {"peft_type": "LOHA", "r": 4})])
def test_uncast_adapter_inputs_under_autocast_change_no_loss(method, params, monkeypatch):
    """In bf16 training peft's cast of each adapter input to float32 is skipped (autocast casts
    it back anyway): the losses are exactly those of the casting path."""
    from contextlib import nullcontext

    from peftbench.config import ModelConfig, TrainConfig
    from peftbench.methods import METHODS
    from peftbench.models import load_model, load_tokenizer
    from peftbench.tasks import TASKS
    from peftbench.train import sft, train_sft

    model_cfg = ModelConfig(name="micro", device="cpu")
    tokenizer = load_tokenizer(model_cfg)
    examples = TASKS.get("micro-math").examples("train", limit=24, seed=0)
    cfg = TrainConfig(max_steps=3, batch_size=8, lr=1e-2, precision="bf16")
    losses = []
    for casting in (True, False):
        torch.manual_seed(0)
        chosen = METHODS.get(method)
        model = chosen.attach(load_model(model_cfg), chosen.params(params))
        with monkeypatch.context() as patched:
            if casting:  # peft's own behaviour: every adapter input cast to the adapter's dtype
                patched.setattr(sft, "uncast_adapter_inputs", lambda model, active: nullcontext())
            losses.append(train_sft(model, tokenizer, examples, cfg, show_progress=False).losses)
        switches = [m.cast_input_dtype_enabled for m in model.modules() if hasattr(m, "cast_input_dtype_enabled")]
        assert switches == [True] * len(switches)  # peft's casting is back on after the loop
    assert losses[0] == losses[1]
