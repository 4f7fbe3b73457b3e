"""Each shipped protocol pinned to its paper, setting by setting, so a later change cannot
drift silently: methods and hyper-parameters, trainable-parameter counts on a meta-device
copy of the paper's model, metrics, seeds. Every config validates at full size offline."""

from __future__ import annotations

import pytest
import torch

from peftbench.cli import packaged_config
from peftbench.validate import load_suite_config
from peftbench.tasks import TASKS

LLAMA3_8B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=8, vocab_size=128256)
# PEFT-Bench's table on Llama-3-8B-Instruct (and PEFT-Factory's mappings: IA3 scales down_proj's
# output, BitFit biases on q_proj and v_proj, P-tuning's encoder is an LSTM of width 768)
PEFT_BENCH_COUNTS = {"lora": 14_680_064, "ia3": 196_608, "prompt": 409_600, "prefix": 34_177_536,
                     "ptuning": 53_130_752, "lntuning": 266_240, "bitfit": 163_840}
# PEFT-Bench's metric per dataset (PEFT-Factory's compute_metrics.py): binary F1 of the second label,
# macro-F1, Pearson, CodeBLEU
PEFT_BENCH_PRIMARY = {
    "qqp": "f1:duplicate", "qnli": "f1:not_entailment", "sst2": "f1:positive", "mrpc": "f1:equivalent",
    "rte": "f1:not_entailment", "cola": "f1:acceptable", "multirc": "f1:true", "boolq": "f1:yes", "wic": "f1:yes",
    "wsc": "f1:yes", "copa": "f1:2", "piqa": "f1:2", "winogrande": "f1:2",
    "mnli": "macro_f1", "cb": "macro_f1", "mmlu": "macro_f1", "siqa": "macro_f1", "hellaswag": "macro_f1",
    "openbookqa": "macro_f1", "math_qa": "macro_f1", "stsb": "pearson", "conala": "codebleu",
    "codealpacapy": "codebleu", "apps": "codebleu",
}


def trainable_on_meta(method_cfg, **model) -> int:
    from transformers import LlamaConfig, LlamaForCausalLM

    from peftbench.cost.params import count_parameters
    from peftbench.methods import METHODS, MethodContext

    with torch.device("meta"):
        base = LlamaForCausalLM(LlamaConfig(**model))
    method = METHODS.get(method_cfg.name)
    return count_parameters(method.attach(base, method.params(method_cfg.params), MethodContext(total_steps=10)))[0]


def test_peft_bench_methods_count_the_papers_trainable_parameters_on_llama_3_8b():
    suite = load_suite_config(packaged_config("peft-bench"))
    assert {m.name: trainable_on_meta(m, **LLAMA3_8B) for m in suite.methods} == PEFT_BENCH_COUNTS


def test_peft_bench_settings_are_the_papers():
    suite = load_suite_config(packaged_config("peft-bench"))
    assert suite.model.name == "meta-llama/Meta-Llama-3-8B-Instruct" and len(suite.tasks) == 27
    assert suite.seeds == [42, 123, 456, 789, 101112]
    assert (suite.train.epochs, suite.train.select_best, suite.train.lr_scheduler, suite.train.batch_size) == \
        (20, True, "cosine", 4)
    assert suite.eval.invalid_answers == "wrong"
    lrs = {m.name: m.lr for m in suite.methods}
    assert lrs == {"lora": 5e-5, "ia3": 5e-5, "prompt": 3e-2, "prefix": 1e-5, "ptuning": 1e-3, "lntuning": 5e-5,
                   "bitfit": 5e-5}
    ptuning = next(m for m in suite.methods if m.name == "ptuning").params
    assert (ptuning["encoder"], ptuning["encoder_hidden_size"], ptuning["encoder_dropout"]) == ("LSTM", 768, 0.1)
    holdout = {(r.method.name, r.task.validation_fraction) for r in suite.expand() if r.task.name == "mnli"}
    assert holdout == {(name, 0.2 if name == "prefix" else 0.1) for name in lrs}  # prefix holds out 20%


def test_peft_bench_scores_each_task_by_the_papers_metric():
    suite = load_suite_config(packaged_config("peft-bench"))
    primaries = {t.name: TASKS.get(t.name).primary_metric for t in suite.tasks}
    assert {k: v for k, v in primaries.items() if k in PEFT_BENCH_PRIMARY} == PEFT_BENCH_PRIMARY
    assert primaries["gsm8k"] == primaries["svamp"] == "math_em" and primaries["record"] == "exact_match"
    for name, metric in PEFT_BENCH_PRIMARY.items():  # and the label of its F1 is one of the task's labels
        if metric.startswith("f1:"):
            assert metric[3:] == TASKS.get(name).labels[1]


def test_the_systematic_comparisons_protocols_are_the_papers():
    sentiment = load_suite_config(packaged_config("sst2-to-imdb"))
    assert [m.name for m in sentiment.methods] == ["lora", "prompt", "prefix", "lora+prompt", "qlora", "full"]
    lora = sentiment.methods[0].params
    assert (lora["r"], lora["alpha"], lora["dropout"], lora["target_modules"]) == (8, 16, 0.1, ["q_proj", "v_proj"])
    assert sentiment.methods[1].params["num_virtual_tokens"] == 8 and sentiment.methods[2].params["num_virtual_tokens"] == 10
    assert (sentiment.train.lr, sentiment.train.batch_size, sentiment.train.epochs, sentiment.train.warmup_steps,
            sentiment.train.weight_decay) == (5e-4, 16, 3, 100, 0.01)
    (task,) = sentiment.tasks
    assert task.name == "sst2" and [t.name for t in task.transfer] == ["imdb"]
    for name in ("sst2", "imdb"):  # binary F1 of the positive class, precision and recall beside it
        spec = TASKS.get(name)
        assert spec.primary_metric == "f1:positive"
        assert {"precision:positive", "recall:positive", "accuracy"} <= set(spec.metrics)
    grid = load_suite_config(packaged_config("ablation-rank-lr-full"))
    assert sorted((m.params["r"], m.lr) for m in grid.methods) == \
        sorted((r, lr) for r in (4, 8, 16, 32, 64) for lr in (1e-4, 5e-4, 1e-3))
    math = load_suite_config(packaged_config("comparison-math"))
    assert [t.name for t in math.tasks[0].transfer] == ["aime24", "gsm8k", "math500"] and math.model.system_prompt
    code = load_suite_config(packaged_config("comparison-code"))
    assert code.tasks[0].name == "codeparrot" and code.tasks[0].transfer[0].metrics == ["pass@1", "pass@5", "token_jaccard"]
    assert code.eval.num_samples >= 5 and code.eval.do_sample


@pytest.mark.parametrize("name", ["arena", "arena-real"])
def test_peft_arena_settings_are_the_papers(name):
    suite = load_suite_config(packaged_config(name))
    assert suite.modes == ["sft", "grpo"]
    assert (suite.train.grpo.beta, suite.train.grpo.num_generations) == (0.0, 8)  # no KL, 8 completions
    methods = {m.name: m.params for m in suite.methods}
    assert methods["lora"]["dropout"] == 0.05 and methods["oft"]["target_modules"] == methods["lora"]["target_modules"]
    assert suite.analysis.spectral and suite.analysis.interpolate
    if name == "arena-real":
        assert (suite.eval.do_sample, suite.eval.temperature, suite.eval.num_samples) == (True, 0.6, 16)  # avg@16
        assert [t.name for t in suite.retention.tasks if not t.name.startswith("bbh_")] == ["ifeval", "nq"]
        assert {t.name for t in suite.tasks} == {"deepmath", "medmcqa"}


def test_token_jaccard_on_humaneval_compares_with_the_canonical_solution_while_pass_at_1_runs_the_tests():
    from peftbench.config import EvalConfig, ModelConfig
    from peftbench.evaluate.evaluator import evaluate_task
    from peftbench.metrics.text import jaccard
    from peftbench.models import load_model, load_tokenizer
    from peftbench.sandbox import SandboxUnavailable, require_isolation

    try:
        require_isolation()
    except SandboxUnavailable as exc:
        pytest.skip(str(exc))
    model_cfg = ModelConfig(name="tiny-random-llama")
    task = TASKS.get("humaneval")
    task = task.__class__(**{**task.__dict__, "metrics": ("pass@1", "token_jaccard")})
    examples = task.examples("test", limit=3)
    result = evaluate_task(load_model(model_cfg), load_tokenizer(model_cfg), task, examples,
                           EvalConfig(max_new_tokens=8), show_progress=False)
    expected = sum(jaccard(r["prediction"], e.answer) for r, e in zip(result["records"], examples)) / 3
    assert result["scores"]["token_jaccard"] == pytest.approx(expected)
    counts = result["grading"]["pass@1"]["counts"]  # the tests ran (and the random model's code failed them)
    assert result["scores"]["pass@1"] == 0.0 and counts["failed"] + counts["error"] == 3
