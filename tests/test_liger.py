"""train.liger: Liger's Triton kernels in the SFT loop. The refusals run everywhere; the
kernels themselves need CUDA and liger-kernel (checked on a lent GPU machine)."""

from __future__ import annotations

import pytest
import torch

from peftbench.validate import validate_run_config
from peftbench.errors import ConfigError, PeftbenchError
from peftbench.train.liger import INSTALL_HINT, liger_installed, require_liger

needs_liger = pytest.mark.skipif(not (torch.cuda.is_available() and liger_installed()),
                                 reason="Liger's kernels need a CUDA GPU and the liger-kernel package")


def test_liger_refused_on_cpu_before_training(tmp_path):
    from peftbench.run import execute_run

    cfg = validate_run_config({"model": {"name": "micro", "device": "cpu"}, "method": "lora", "task": "toy-sentiment",
                               "train": {"liger": True}, "output_dir": str(tmp_path)})
    with pytest.raises(PeftbenchError, match="CUDA device.*liger: false"):
        execute_run(cfg, show_progress=False)
    assert not any(tmp_path.rglob("metrics.json"))


@pytest.mark.skipif(liger_installed(), reason="liger-kernel is installed: the refusal is for machines without it")
def test_liger_without_package_names_install():
    with pytest.raises(PeftbenchError, match=INSTALL_HINT):
        require_liger("cuda")


def test_liger_is_a_speed_setting_and_sft_only():
    from peftbench.run import config_hash

    plain = {"method": "lora", "task": "toy-sentiment"}
    assert config_hash(validate_run_config(plain)) == config_hash(
        validate_run_config({**plain, "train": {"liger": True}}))
    with pytest.raises(ConfigError, match="liger"):
        validate_run_config({**plain, "train": {"mode": "grpo", "liger": True}})
    with pytest.raises(ConfigError, match="torch.compile"):
        validate_run_config({**plain, "train": {"liger": True, "compile": True}})


def _lora_micro(seed: int):
    from peftbench.config import ModelConfig
    from peftbench.methods import METHODS
    from peftbench.models import load_model, load_tokenizer

    cfg = ModelConfig(name="micro", device="cuda")
    torch.manual_seed(seed)
    lora = METHODS.get("lora")
    model = lora.attach(load_model(cfg), lora.params({"r": 8, "target_modules": "all-linear"}))
    return model, load_tokenizer(cfg)


@needs_liger
def test_liger_trains_like_plain_and_is_undone_after():
    from transformers.models.llama import modeling_llama

    from peftbench.config import TrainConfig
    from peftbench.models.loading import transformer_of
    from peftbench.tasks import TASKS
    from peftbench.train import train_sft

    examples = TASKS.get("micro-math").examples("train", limit=64, seed=0)
    plain_classes = (modeling_llama.LlamaRMSNorm, modeling_llama.LlamaMLP, modeling_llama.apply_rotary_pos_emb)
    losses, seen = {}, {}
    for liger in (False, True):
        model, tokenizer = _lora_micro(seed=0)
        layer = transformer_of(model).model.layers[0]  # the CausalLM under peft, then its decoder
        norm, mlp = layer.input_layernorm, layer.mlp
        cfg = TrainConfig(max_steps=8, batch_size=8, lr=1e-3, precision="bf16", liger=liger)
        # during training the norms and MLPs run Liger's forward; the module's classes do not change
        on_step = lambda step: seen.setdefault(liger, ("forward" in vars(norm), "forward" in vars(mlp)))  # noqa: E731,B023
        losses[liger] = train_sft(model, tokenizer, examples, cfg, show_progress=False, on_step=on_step).losses
        assert "forward" not in vars(norm) and "forward" not in vars(mlp)  # undone after the loop
    assert seen == {False: (False, False), True: (True, True)}
    assert (modeling_llama.LlamaRMSNorm, modeling_llama.LlamaMLP, modeling_llama.apply_rotary_pos_emb) == plain_classes
    # the same model, data and seed: the kernels round differently in bf16, nothing more
    assert losses[True][-1] < losses[True][0]
    assert losses[True] == pytest.approx(losses[False], rel=2e-2)
