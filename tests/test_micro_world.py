"""The micro world: deterministic generators, disjoint splits, a reproducible pretraining recipe."""

import json
import math
from pathlib import Path

import pytest
import torch

from peftbench.micro import generators
from peftbench.micro.splits import GENERATORS, SIZES, split_examples
from peftbench.tasks import TASKS
from peftbench.tasks.micro import GENERAL_TASKS, TARGET_TASKS


def test_registered_skills_match_the_generators():
    from peftbench.tasks.micro import GENERAL_SKILLS

    assert GENERAL_SKILLS == tuple(generators.GENERAL_SKILLS)


def test_at_least_six_general_skills_and_the_five_target_families():
    assert len(GENERAL_TASKS) >= 6
    assert {"micro-math", "micro-sentiment", "micro-sentiment-transfer", "micro-code", "micro-nli", "micro-med"} <= set(TARGET_TASKS)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_splits_are_deterministic_and_disjoint(name):
    train = split_examples(name, "train")
    test = split_examples(name, "test")
    assert len(train) == SIZES["train"] and len(test) > 0
    split_examples.cache_clear()
    assert split_examples(name, "test") == test  # regenerated from the seed, identical
    from peftbench.micro.splits import _SHARED_SPACE

    if name not in _SHARED_SPACE:  # knowledge (facts, the arithmetic table) is asked as trained, by design
        assert not {e.prompt for e in test} & {e.prompt for e in train}
    assert len({e.prompt for e in test}) == len(test)  # no example counted twice


def test_hand_checked_examples():
    import random

    rng = random.Random(0)
    for _ in range(20):
        example = generators.add_skill(rng)
        expression = example.prompt.split(":")[1].split("\n")[0]
        a, op, b = expression.split()
        assert example.answer == f" {int(a) + int(b) if op == '+' else int(a) - int(b)}"
    for example in split_examples("math", "test")[:50]:
        # a worked solution: each step true, each starting from the previous result, the
        # first from the prompt's opening amount, the last giving the graded reference
        steps = [s.split() for s in example.answer.strip().rstrip(".").split(", ")]
        start = int(example.prompt.split(" has ")[1].split()[0])
        for a, op, b, _, result in steps:
            assert int(a) == start and int(result) == (int(a) + int(b) if op == "+" else int(a) - int(b))
            start = int(result)
        assert example.reference == str(start) and int(start) >= 0
        assert TASKS.get("micro-math").extract(example.answer) == example.reference
    for example in split_examples("med", "test")[:50]:
        assert example.answer in example.choices


def test_transfer_split_is_long_reviews():
    short = split_examples("sentiment", "test")
    long = split_examples("sentiment", "transfer")
    assert sum(e.prompt.count(".") for e in long) > 2 * sum(e.prompt.count(".") for e in short)
    assert TASKS.get("micro-sentiment-transfer").eval_split == "transfer"


def test_code_references_are_tests_the_canonical_solution_passes():
    from peftbench.sandbox import check_programs

    examples = split_examples("code", "test")[:8]
    results = check_programs([e.answer.strip() for e in examples], [e.reference for e in examples])
    assert all(r.passed for r in results)
    assert not check_programs(["def f(x): return x"], [examples[0].reference])[0].passed


def test_pretraining_is_reproducible_at_reduced_size(tmp_path):
    from peftbench.micro.pretrain import Recipe, pretrain

    recipe = Recipe(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
                    examples=1024, anneal_examples=256, batch_size=32, warmup_steps=5, eval_samples=16)
    first = pretrain(recipe, tmp_path / "a", show_progress=False)
    second = pretrain(recipe, tmp_path / "b", show_progress=False)
    assert first["final_loss"] < 0.8 * math.log(recipe.vocab_size)  # learned something beyond uniform
    assert first["scores"] == second["scores"]
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a" / "README.md").read_text().startswith("# peftbench micro model")


@pytest.fixture(scope="module")
def shipped():
    from peftbench.config import ModelConfig
    from peftbench.models import load_model, load_tokenizer
    from peftbench.models.loading import resolve_source

    cfg = ModelConfig(name="micro", device="cpu")
    assert resolve_source("micro").endswith("micro/model")  # a plain HF folder, loaded like a hub model
    return load_model(cfg), load_tokenizer(cfg)


def test_shipped_model_matches_its_card(shipped):
    """The card's figures are what the shipped weights score (re-measured on a sample)."""
    from peftbench.config import EvalConfig
    from peftbench.evaluate import evaluate_task

    model, tokenizer = shipped
    card = json.loads((Path(resolve("micro")) / "card.json").read_text())
    for name in GENERAL_TASKS:
        task = TASKS.get(name)
        result = evaluate_task(model, tokenizer, task, task.examples("test", 40), EvalConfig(batch_size=40, max_new_tokens=16),
                               show_progress=False)
        assert abs(result["score"] - card["scores"][name]) <= 0.15, (name, result["score"], card["scores"][name])
    for name in GENERAL_TASKS:  # every general skill mastered: there is something to retain
        assert card["scores"][name] >= 0.9, name


def test_shipped_model_is_weak_on_target_tasks():
    card = json.loads((Path(resolve("micro")) / "card.json").read_text())
    assert card["scores"]["micro-math"] < 0.2 and card["scores"]["micro-code"] < 0.2
    for name in ("micro-sentiment", "micro-nli"):
        assert card["scores"][name] < 0.7  # near the 50% chance of a yes/no label
    assert card["scores"]["micro-med"] < 0.45  # 4 options: chance is 25%
    assert card["parameters"] < 10_000_000
    size = sum(p.stat().st_size for p in Path(resolve("micro")).glob("*.safetensors"))
    assert size <= 20 * 1024 * 1024


def resolve(name):
    from peftbench.models.loading import resolve_source

    return resolve_source(name)
