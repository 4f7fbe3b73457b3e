"""Every registered method: trains, counts, saves, reloads and (where it can) merges."""

import pytest
import torch
from transformers import PreTrainedModel

from peftbench.config import ModelConfig, TrainConfig
from peftbench.validate import validate_run_config
from peftbench.cost.params import count_parameters
from peftbench.methods import METHODS, MethodContext, NotMergeableError
from peftbench.models import load_model, load_tokenizer
from peftbench.models.loading import resolve_source
from peftbench.tasks import TASKS
from peftbench.train import train_sft

MODEL = ModelConfig(device="cpu")
PASSTHROUGH = {
    "loha": {"peft_type": "LOHA", "r": 4, "target_modules": ["q_proj", "v_proj"]},
    "lokr": {"peft_type": "LOKR", "r": 4, "target_modules": ["q_proj", "v_proj"]},
    "fourierft": {"peft_type": "FOURIERFT", "n_frequency": 64, "scaling": 100.0, "target_modules": ["q_proj", "v_proj"]},
}
# (method name, hyper-parameters, learning rate): lrs in each family's usual range
CASES = [
    ("full", {}, 1e-3), ("lora", {}, 5e-3), ("dora", {}, 5e-3), ("pissa", {}, 5e-3), ("rslora", {}, 5e-3),
    ("loraplus", {}, 2e-3), ("adalora", {}, 5e-3), ("vera", {"r": 32}, 1e-2), ("ia3", {}, 1e-2),
    ("prompt", {}, 3e-2), ("prefix", {}, 1e-2), ("prefix", {"projection": True, "encoder_hidden_size": 32}, 1e-3),
    ("ptuning", {}, 1e-2), ("lntuning", {}, 1e-2),
    ("oft", {}, 5e-3), ("boft", {}, 5e-3), ("bitfit", {}, 1e-2), ("svft", {}, 1e-2), ("adapter", {}, 5e-3),
    ("lora+prompt", {}, 5e-3),
    *[("peft", params, 5e-3) for params in PASSTHROUGH.values()],
]
IDS = [name if name != "peft" else f"peft-{params['peft_type'].lower()}" for name, params, _ in CASES]
IDS[IDS.index("prefix", IDS.index("prefix") + 1)] = "prefix-projection"
# PiSSA saves peft's portable form: a rank-2r LoRA on the *original* base. It is the same
# function, computed in another float32 order (W x - B0 A0 x + B A x instead of
# W_res x + B A x), which moves logits of size ~5 by ~1e-5.
RELOAD_TOLERANCE = {"pissa": 5e-5}
MERGEABLE = {"full", "lora", "dora", "pissa", "rslora", "loraplus", "adalora", "vera", "ia3", "lntuning", "oft",
             "boft", "svft", "peft"}


def test_every_registered_method_is_covered():
    assert set(METHODS.names()) - {"qlora"} == {name for name, _, _ in CASES}


def batch(tokenizer):
    tokenizer.padding_side = "right"
    return tokenizer(["Review: the plot was dull\nSentiment:", "Review: great cast\nSentiment: positive"],
                     return_tensors="pt", padding=True)


def logits(model, inputs):
    """Logits of the real tokens (peft's prompt tuning also returns its virtual tokens')."""
    with torch.no_grad():
        return model(**inputs).logits[:, -inputs["input_ids"].shape[1] :]


@pytest.mark.parametrize("name,params,lr", CASES, ids=IDS)
def test_method_trains_counts_reloads_and_merges(name, params, lr, tmp_path):
    method = METHODS.get(name)
    hyper = method.params(params)
    tokenizer = load_tokenizer(MODEL)
    torch.manual_seed(0)
    train_cfg = TrainConfig(max_steps=30, lr=lr, batch_size=8, max_length=64)
    model = method.attach(load_model(MODEL), hyper, MethodContext(total_steps=30, model_source=resolve_source(MODEL.name)))

    # exact cost accounting, against the implementing library's own count
    trainable, _ = count_parameters(model)
    assert trainable > 0 and trainable == method.reference_trainable_count(model)

    optimizer = method.build_optimizer(model, hyper, lr, 0.0)
    result = train_sft(model, tokenizer, TASKS.get("toy-sentiment").examples("train"), train_cfg,
                       show_progress=False, optimizer=optimizer, on_step=lambda s: method.on_step(model, s))
    assert result.status == "completed" and result.steps == 30
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert last < first, f"{name}: loss did not go down ({first:.3f} -> {last:.3f})"

    inputs = batch(tokenizer)
    tuned = logits(model, inputs)
    method.save(model, tmp_path / "adapter")
    reloaded = method.load(load_model(MODEL), tmp_path / "adapter")
    reloaded.eval()
    assert (logits(reloaded, inputs) - tuned).abs().max().item() <= RELOAD_TOLERANCE.get(name, 1e-5)
    assert (logits(load_model(MODEL), inputs) - tuned).abs().max().item() > 1e-4  # training changed something

    if name in MERGEABLE:
        merged = method.merge(reloaded)
        assert isinstance(merged, PreTrainedModel) and not hasattr(merged, "peft_config")
        assert (logits(merged, inputs) - tuned).abs().max().item() <= 1e-4
    else:
        with pytest.raises(NotMergeableError):
            method.merge(reloaded)


# AdaLoRA's model adds its orthogonality penalty to its loss
OWN_LOSS = {"adalora"}


@pytest.mark.parametrize("name,params,lr", CASES, ids=IDS)
def test_answer_loss_on_scored_positions_only_equals_the_models_own(name, params, lr):
    from peftbench.train.data import BATCHERS, encode_examples
    from peftbench.models.compat import takes_position_masks
    from peftbench.train.loss import answer_loss, scores_selectively

    method = METHODS.get(name)
    tokenizer = load_tokenizer(MODEL)
    torch.manual_seed(0)
    model = method.attach(load_model(MODEL), method.params(params), MethodContext(total_steps=4))
    assert scores_selectively(model) is (name not in OWN_LOSS and takes_position_masks())
    if name in OWN_LOSS:
        return
    if not takes_position_masks():
        pytest.skip("transformers before 5.23 takes no position mask: the model computes its own loss")
    model.train()
    examples = encode_examples(tokenizer, TASKS.get("micro-math").examples("train", limit=6), 128)
    trainable = [p for p in model.parameters() if p.requires_grad]
    # soft prompts shift every position by their virtual tokens (and never pack)
    for batching in ("padded", "packed") if method.packs(method.params(params)) else ("padded",):
        tensors = BATCHERS[batching](examples, tokenizer.pad_token_id)
        losses, grads = [], []
        for selective in (False, True):
            loss = answer_loss(model, tensors, selective)
            losses.append(loss.item())
            grads.append(torch.autograd.grad(loss, trainable))
        assert losses[1] == pytest.approx(losses[0], rel=1e-5), batching
        for own, selected in zip(*grads):
            torch.testing.assert_close(selected, own, rtol=1e-4, atol=1e-6)


def test_bitfit_adds_zero_biases_so_untrained_model_is_unchanged():
    tokenizer = load_tokenizer(MODEL)
    inputs = batch(tokenizer)
    base = logits(load_model(MODEL), inputs)
    method = METHODS.get("bitfit")
    model = method.attach(load_model(MODEL), method.params({}))
    assert torch.equal(logits(model, inputs), base)
    # one bias per output unit of every linear layer but the head: 2 layers x 512 outputs
    assert count_parameters(model)[0] == 2 * (64 + 32 + 32 + 64 + 128 + 128 + 64)


@pytest.mark.parametrize("name", ["adapter", "svft", "lora+prompt"])
def test_handwritten_methods_count_by_hand(name):
    method = METHODS.get(name)
    model = method.attach(load_model(MODEL), method.params({}))
    trainable = count_parameters(model)[0]
    expected = {
        # pfeiffer after each down_proj: bottleneck 64/16 = 4; down 64*4+4, up 4*64+64
        "adapter": 2 * (64 * 4 + 4 + 4 * 64 + 64),
        # banded (half-width 2) r x r masks on q (r=64) and v (r=32) per layer
        "svft": 2 * ((5 * 64 - 6) + (5 * 32 - 6)),
        # LoRA r=8 on q (64->64) and v (64->32), plus 8 virtual tokens of width 64
        "lora+prompt": 2 * (8 * (64 + 64) + 8 * (64 + 32)) + 8 * 64,
    }[name]
    assert trainable == expected


def test_qlora_refuses_on_cpu_before_loading(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is present: the refusal path only exists on CPU machines")
    from peftbench.methods import MethodUnavailableError
    from peftbench.run import execute_run

    cfg = validate_run_config({"model": {"name": "no/such-model-anywhere"}, "method": "qlora",
                               "task": "toy-sentiment", "output_dir": str(tmp_path)})
    with pytest.raises(MethodUnavailableError, match="CUDA"):
        execute_run(cfg, show_progress=False)  # the bogus model id proves nothing was loaded


def test_passthrough_rejects_unknown_type_and_field():
    from peftbench.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        validate_run_config({"method": {"name": "peft", "peft_type": "NOPE"}, "task": "toy-sentiment"})
    message = dict(info.value.problems)["method"]
    assert "NOPE" in message and "LOKR" in message and "LOHA" in message
    with pytest.raises(ConfigError) as info:
        validate_run_config({"method": {"name": "peft", "peft_type": "lokr", "rank": 4}, "task": "toy-sentiment"})
    message = dict(info.value.problems)["method"]
    assert "rank" in message and "r," in message and "alpha" in message


def test_target_modules_translate_for_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    from peftbench.methods.targets import resolve_target_modules

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    assert resolve_target_modules(gpt2, ["q_proj", "v_proj", "down_proj"]) == ["c_attn", "mlp.c_proj"]
    method = METHODS.get("lora")
    model = method.attach(gpt2, method.params({}))
    assert count_parameters(model)[0] == 8 * (32 + 96)  # LoRA on the fused qkv (32 -> 96)


def test_unknown_target_module_lists_the_real_ones():
    from peftbench.errors import PeftbenchError

    method = METHODS.get("lora")
    with pytest.raises(PeftbenchError, match="q_proj"):
        method.attach(load_model(MODEL), method.params({"target_modules": ["query"]}))


def test_prompt_tuning_text_init_starts_from_the_text_embeddings():
    method = METHODS.get("prompt")
    tokenizer = load_tokenizer(MODEL)
    params = method.params({"init": "text", "init_text": "Sentiment", "num_virtual_tokens": 9})
    base = load_model(MODEL)
    text_embeddings = base.get_input_embeddings().weight[tokenizer("Sentiment", add_special_tokens=False)["input_ids"]]
    model = method.attach(base, params, MethodContext(model_source=resolve_source(MODEL.name)))
    prompt = model.prompt_encoder["default"].embedding.weight
    assert torch.equal(prompt, text_embeddings.detach())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="QLoRA needs a CUDA GPU (bitsandbytes 4-bit kernels)")
def test_qlora_trains_on_cuda(tmp_path):
    pytest.importorskip("bitsandbytes", reason="QLoRA needs bitsandbytes, installed only on GPU machines")
    from peftbench.run import execute_run

    cfg = validate_run_config({"model": {"name": "tiny-random-llama", "device": "cuda"}, "method": {"name": "qlora", "target_modules": "all-linear"},
                               "task": {"name": "toy-sentiment", "max_eval": 16}, "train": {"max_steps": 30, "lr": 5e-3, "batch_size": 16},
                               "output_dir": str(tmp_path)})
    metrics = execute_run(cfg, show_progress=False)
    assert metrics["status"] == "done"
    assert metrics["train"]["final_loss"] < metrics["train"]["first_loss"]


def test_pissa_saves_without_peft_warning_of_its_own_conversion(tmp_path):
    """Saving PiSSA converts it to a LoRA on the original base (peft loads the initial adapter
    beside the trained one); peft's warning against PiSSA with other adapters is not for this."""
    import warnings

    from peft import PeftModel

    from peftbench.methods.lora import PISSA_CONVERSION_WARNING

    method = METHODS.get("pissa")
    model = method.attach(load_model(MODEL), method.params({"r": 4}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        method.save(model, tmp_path / "adapter")
    assert not [w for w in caught if str(w.message).startswith(PISSA_CONVERSION_WARNING)]
    # the message peftbench filters is the one peft raises (a peft release that rewords it
    # would otherwise bring the warning back unnoticed)
    initial = getattr(model, method._INITIAL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.save_pretrained(str(tmp_path / "raw"), path_initial_model_for_weight_conversion=str(initial))
    assert [w for w in caught if str(w.message).startswith(PISSA_CONVERSION_WARNING)]
    assert isinstance(method.load(load_model(MODEL), tmp_path / "adapter"), PeftModel)


def test_adalora_saves_modules_pruned_to_rank_zero_without_the_shard_warning(tmp_path):
    """A module AdaLoRA prunes to rank 0 is saved with zero-sized lora_A/lora_B, which peft's
    save check reports as ungathered ZeRO-3/FSDP shards; in a single process there are none."""
    import re
    import warnings

    from peftbench.methods.lora import UNGATHERED_SHARDS_WARNING

    method = METHODS.get("adalora")
    tokenizer = load_tokenizer(MODEL)
    torch.manual_seed(0)
    hyper = method.params({"r": 1, "init_r": 4, "tinit": 0, "tfinal": 0})
    model = method.attach(load_model(MODEL), hyper, MethodContext(total_steps=12))
    train_sft(model, tokenizer, TASKS.get("toy-sentiment").examples("train"),
              TrainConfig(max_steps=12, lr=5e-3, batch_size=8, max_length=64), show_progress=False,
              on_step=lambda s: method.on_step(model, s))
    pattern = model.peft_config["default"].rank_pattern
    assert pattern and any(sum(mask) == 0 for mask in pattern.values())  # some module is at rank 0

    def shard_warnings(save) -> list:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            save()
        return [w for w in caught if re.match(UNGATHERED_SHARDS_WARNING, str(w.message))]

    assert shard_warnings(lambda: model.save_pretrained(str(tmp_path / "raw")))  # peft's own check fires
    assert not shard_warnings(lambda: method.save(model, tmp_path / "adapter"))
    inputs = batch(tokenizer)
    reloaded = method.load(load_model(MODEL), tmp_path / "adapter").eval()
    model.eval()
    assert (logits(reloaded, inputs) - logits(model, inputs)).abs().max().item() <= 1e-5
