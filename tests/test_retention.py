"""Retention: a run scores its tuned model on general suites against the cached base."""

import re

import pytest

from peftbench.config import ModelConfig
from peftbench.validate import validate_run_config, validate_suite_config
from peftbench.errors import ConfigError
from peftbench.evaluate import evaluate_task
from peftbench.models import load_model, load_tokenizer
from peftbench.report.summary import pareto_front
from peftbench.run import execute_run
from peftbench.tasks import TASKS
from peftbench.tasks.micro import GENERAL_TASKS


def _run(tmp_path, lr=5e-3, retention=None):
    return validate_run_config({
        "model": {"name": "tiny-random-llama", "device": "cpu"},
        "method": {"name": "full", "lr": lr},
        "task": {"name": "toy-sentiment", "max_train": 64, "max_eval": 8},
        "train": {"max_steps": 4, "batch_size": 16},
        "eval": {"batch_size": 16, "max_new_tokens": 4},
        "retention": retention or {"tasks": ["toy-sentiment-choice", "test-parity"], "max_eval": 12},
        "output_dir": str(tmp_path / "runs"),
    })


def test_a_run_records_retention_against_the_cached_base(tmp_path):
    first = execute_run(_run(tmp_path), show_progress=False)["retention"]
    base, tuned = first["base"], first["tuned"]
    assert set(base["scores"]) == {"toy-sentiment-choice", "test-parity"}
    assert first["forgetting_points"] == pytest.approx(100 * (base["average"] - tuned["average"]))
    assert first["cross_entropy_change"] == pytest.approx(tuned["cross_entropy"] - base["cross_entropy"])
    assert tuned["cross_entropy"] != base["cross_entropy"]  # the tuned weights were scored, not the base

    # the base scores are the base model's own, on the capped test split
    cfg = ModelConfig(name="tiny-random-llama", device="cpu")
    task = TASKS.get("toy-sentiment-choice")
    direct = evaluate_task(load_model(cfg), load_tokenizer(cfg), task, task.examples("test", 12), _run(tmp_path).eval,
                           show_progress=False)["score"]
    assert base["scores"]["toy-sentiment-choice"] == direct

    (cached,) = (tmp_path / "runs" / "default" / "retention-base").glob("*.json")
    stamp = cached.stat().st_mtime_ns
    second = execute_run(_run(tmp_path, lr=1e-2), show_progress=False)["retention"]
    assert cached.stat().st_mtime_ns == stamp and second["base"] == base  # computed once, reused


def test_retention_groups_expand_and_bad_names_are_named(tmp_path):
    suite = validate_suite_config({"methods": ["lora"], "tasks": ["micro-math"],
                                   "retention": {"tasks": ["micro-general"]}})
    assert [t.name for t in suite.retention.tasks] == list(GENERAL_TASKS)
    with pytest.raises(ConfigError, match=r"retention.tasks\[0\].name.*unknown task 'nope'"):
        _run(tmp_path, retention={"tasks": ["nope"]})


def test_pareto_front_keeps_points_nothing_beats_on_both_axes():
    points = [(90, 40), (80, 60), (70, 50), (60, 70), (90, 40), (50, 65)]
    # (70, 50) is beaten by (80, 60); (50, 65) by (60, 70); the duplicates of (90, 40) both stay
    assert pareto_front(points) == [0, 1, 3, 4]


def test_report_draws_the_target_vs_retention_plane(tmp_path):
    from peftbench.cli import main
    from peftbench.sweep import run_suite

    suite = validate_suite_config({
        "name": "plane", "model": {"name": "tiny-random-llama", "device": "cpu"},
        "methods": ["lora", "ia3"], "tasks": [{"name": "toy-sentiment", "max_train": 32, "max_eval": 8}],
        "train": {"max_steps": 2, "batch_size": 16}, "eval": {"batch_size": 16, "max_new_tokens": 4},
        "retention": {"tasks": ["toy-sentiment-choice"], "max_eval": 8}, "output_dir": str(tmp_path / "runs"),
    })
    run_suite(suite, show_progress=False)
    assert main(["report", str(tmp_path / "runs" / "plane"), "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "report.html").read_text()
    assert re.search(r"<img alt='target score vs retained general ability[^']*' src='data:image/png;base64,", page)
    assert "retention %" in page and "forgetting pts" in page


def test_general_score_averages_families_first():
    from peftbench.retention import general_score

    # PEFT-Arena: (BBH mean + IFEval + NQ) / 3
    scores = {"bbh_date_understanding": 0.2, "bbh_navigate": 0.4, "bbh_snarks": 0.6, "ifeval": 0.9, "nq": 0.3}
    assert general_score(scores) == pytest.approx((0.4 + 0.9 + 0.3) / 3)
    micro = {"micro-copy": 1.0, "micro-add": 0.5, "micro-sort": 0.0}  # one family: the plain mean
    assert general_score(micro) == pytest.approx(0.5)


def test_default_retention_depends_on_the_model():
    from peftbench.validate import validate_run_config
    from peftbench.tasks.micro import GENERAL_TASKS

    micro = validate_run_config({"model": {"name": "micro"}, "method": "lora", "task": "micro-math",
                                 "retention": {"tasks": ["default"]}})
    assert [t.name for t in micro.retention.tasks] == list(GENERAL_TASKS)
    real = validate_run_config({"model": {"name": "some-org/some-llm"}, "method": "lora", "task": "micro-math",
                                "retention": {"tasks": ["default"]}})
    names = [t.name for t in real.retention.tasks]
    assert len([n for n in names if n.startswith("bbh_")]) == 27 and names[-2:] == ["ifeval", "nq"]
