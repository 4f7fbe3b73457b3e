"""Packed batches: the same examples end to end, position ids restarting, no cross-attention:
the loss, the gradients and a short training run must match padded batches."""

from __future__ import annotations

import pytest
import torch

from peftbench.config import ModelConfig, TrainConfig
from peftbench.methods import METHODS
from peftbench.models import load_model, load_tokenizer
from peftbench.models.compat import is_checkpointing
from peftbench.prompting import IGNORE_INDEX
from peftbench.run import resolve_batching
from peftbench.errors import PeftbenchError
from peftbench.tasks import TASKS
from peftbench.train.data import encode_examples, pack_batch, pad_batch
from peftbench.models.loading import transformer_of
from peftbench.train.sft import train_sft


def micro():
    cfg = ModelConfig(name="micro", device="cpu")
    return load_model(cfg), load_tokenizer(cfg)


def encoded_batch(tokenizer, n=6, loss_on_prompt=False):
    """Examples of mixed lengths (long word problems, short copies), as real SFT data has."""
    examples = [e for name in ("micro-math", "micro-copy") for e in TASKS.get(name).examples("train", limit=n)]
    return encode_examples(tokenizer, examples, 256, loss_on_prompt)


def test_packing_fills_rows_and_restarts_positions():
    _, tok = micro()
    batch = encoded_batch(tok)
    packed = pack_batch(batch, tok.pad_token_id)
    lengths = [len(e.input_ids) for e in batch]
    rows, width = packed["input_ids"].shape
    assert rows < len(batch) and width >= max(lengths)
    assert rows * width < len(batch) * max(lengths)  # less padding than the padded batch
    # every example's tokens are there once, each starting at position 0
    assert int((packed["position_ids"] == 0).sum()) >= len(batch)
    kept = packed["labels"] != IGNORE_INDEX
    assert int(kept.sum()) == sum(e.target_tokens for e in batch)


@pytest.mark.parametrize("loss_on_prompt", [False, True])
def test_packed_loss_and_gradients_equal_padded(loss_on_prompt):
    model, tok = micro()
    batch = encoded_batch(tok, loss_on_prompt=loss_on_prompt)
    results = []
    for collate in (pad_batch, pack_batch):
        model.zero_grad()
        loss = model(**collate(batch, tok.pad_token_id), use_cache=False).loss
        loss.backward()
        results.append((loss.item(), [p.grad.clone() for p in model.parameters()]))
    (padded_loss, padded_grads), (packed_loss, packed_grads) = results
    assert packed_loss == pytest.approx(padded_loss, rel=1e-5)
    for a, b in zip(padded_grads, packed_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # float32 rounding of other row shapes


def test_packed_rows_balance_padding_against_attention():
    from peftbench.train.data import ATTENTION_COST_PER_WIDTH, packed_rows

    def positions(rows, lengths):
        return len(rows) * max(sum(lengths[i] for i in row) for row in rows)

    # sixteen examples of 43-87 tokens (SmolLM2's SFT mixture): rows as wide as the longest
    # would hold one example each (1.3 positions a token); balanced rows hold several
    lengths = [87, 80, 76, 71, 68, 66, 64, 62, 61, 60, 58, 55, 52, 50, 47, 43]
    rows = packed_rows(lengths)
    assert sorted(i for row in rows for i in row) == list(range(16))
    assert 1 < len(rows) < 16 and positions(rows, lengths) < 1.1 * sum(lengths)
    # many short examples: not one row for all, whose attention would span the whole batch
    short = [20] * 64
    rows = packed_rows(short)
    width = max(sum(short[i] for i in row) for row in rows)
    assert len(rows) > 1 and width * ATTENTION_COST_PER_WIDTH < 0.5
    # one example: one row, as it is
    assert packed_rows([30]) == [[0]]


def test_without_position_restarts_the_examples_would_see_each_other():
    # the guard above has teeth: the same packed rows with plain positions (one long sequence) give another loss
    model, tok = micro()
    batch = encoded_batch(tok)
    packed = pack_batch(batch, tok.pad_token_id)
    plain = torch.arange(packed["input_ids"].shape[1]).expand_as(packed["input_ids"])
    with torch.no_grad():
        right = model(**packed, use_cache=False).loss.item()
        wrong = model(**{**packed, "position_ids": plain}, use_cache=False).loss.item()
        padded = model(**pad_batch(batch, tok.pad_token_id), use_cache=False).loss.item()
    assert right == pytest.approx(padded, rel=1e-5)
    assert abs(right - wrong) > 1e-3


def lora_run(per_task: int, **train):
    """(model, step losses) of a short seeded LoRA run on the micro model (mixed-length examples)."""
    examples = [e for name in ("micro-math", "micro-copy") for e in TASKS.get(name).examples("train", limit=per_task)]
    torch.manual_seed(0)
    model, tok = micro()
    model = METHODS.get("lora").attach(model, METHODS.get("lora").params({"target_modules": "all-linear"}))
    cfg = TrainConfig(**{"batch_size": 8, "lr": 3e-3, **train})
    return model, train_sft(model, tok, examples, cfg, show_progress=False).losses


def test_a_short_lora_run_trains_the_same_packed_or_padded():
    losses = {batching: lora_run(24, max_steps=6, batching=batching)[1] for batching in ("padded", "packed")}
    assert losses["packed"] == pytest.approx(losses["padded"], rel=1e-3)
    assert losses["packed"][-1] < losses["packed"][0]


def test_soft_prompts_are_not_packed():
    prompt, lora = METHODS.get("prompt"), METHODS.get("lora")
    assert resolve_batching("auto", lora, lora.params({})) == "packed"
    assert resolve_batching("auto", prompt, prompt.params({})) == "padded"
    passthrough = METHODS.get("peft")
    assert resolve_batching("auto", passthrough, passthrough.params({"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 4})) == "padded"
    with pytest.raises(PeftbenchError, match="train.batching"):
        resolve_batching("packed", prompt, prompt.params({}))


@pytest.mark.parametrize("setting", [{"gradient_checkpointing": True}, {"batching": "packed", "gradient_checkpointing": True}])
def test_gradient_checkpointing_trains_the_same(setting):
    losses = {}
    for variant in ({}, setting):
        model, losses[str(variant)] = lora_run(16, **{"max_steps": 4, "batching": "padded", **variant})
        assert not is_checkpointing(transformer_of(model))  # switched off again for evaluation
    plain, other = losses.values()
    assert other == pytest.approx(plain, rel=1e-3)


def test_speed_settings_do_not_change_a_run_id(tmp_path):
    from conftest import run_config
    from peftbench.run import run_id

    plain = run_config(tmp_path)
    fast = run_config(tmp_path, train={"batching": "packed", "gradient_checkpointing": True, "compile": True})
    assert run_id(plain) == run_id(fast)


def test_bf16_mixed_precision_trains_like_fp32_and_is_part_of_the_run_id(tmp_path):
    from conftest import run_config
    from peftbench.run import run_id

    losses = {}
    for precision in ("fp32", "bf16"):
        model, losses[precision] = lora_run(16, max_steps=4, precision=precision)
        assert next(model.parameters()).dtype == torch.float32  # the weights stay float32: autocast only
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=2e-2)
    assert losses["bf16"] != losses["fp32"]  # autocast was on
    assert run_id(run_config(tmp_path)) == run_id(run_config(tmp_path, train={"precision": "auto"}))
    assert run_id(run_config(tmp_path)) != run_id(run_config(tmp_path, train={"precision": "bf16"}))


def test_eager_attention_keeps_packed_examples_apart_like_sdpa():
    # auto trains bf16-on-CPU runs with eager attention: it must build the same block-diagonal mask
    model, tok = micro()
    batch = encoded_batch(tok)
    losses = {}
    with torch.no_grad():
        for implementation in ("sdpa", "eager"):
            model.set_attn_implementation(implementation)
            losses[implementation] = model(**pack_batch(batch, tok.pad_token_id), use_cache=False).loss.item()
        padded = model(**pad_batch(batch, tok.pad_token_id), use_cache=False).loss.item()
    assert losses["eager"] == pytest.approx(losses["sdpa"], rel=1e-5)
    assert losses["eager"] == pytest.approx(padded, rel=1e-5)


def test_training_attention_is_switched_for_training_only():
    from peftbench.train.sft import training_attention

    cpu = torch.device("cpu")
    assert training_attention("auto", cpu, torch.bfloat16) == "eager"
    assert training_attention("auto", cpu, None) is None  # fp32: the model's own (sdpa)
    assert training_attention("auto", torch.device("cuda"), torch.bfloat16) is None
    assert training_attention("sdpa", cpu, torch.bfloat16) == "sdpa"

    seen = []
    original = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):
        seen.append("sdpa")
        return original(*args, **kwargs)

    torch.nn.functional.scaled_dot_product_attention = spy
    try:
        model, _ = lora_run(8, max_steps=2, precision="bf16")
        assert seen == []  # trained with eager: SDPA never ran
        assert transformer_of(model).config._attn_implementation == "sdpa"  # evaluation gets the model's own back
        lora_run(8, max_steps=2, precision="bf16", attention="sdpa")
        assert seen  # asked for by name: used
    finally:
        torch.nn.functional.scaled_dot_product_attention = original


def test_an_unknown_attention_names_the_field():
    with pytest.raises(ValueError, match="attention"):
        TrainConfig(attention="fastest")
