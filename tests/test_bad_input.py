"""Bad input never hangs, lies or crashes: each case ends `peftbench run` with one line that
names the file, the line and the field, exit status 2, and nothing written: the check
happens before a run folder, the results store or a model exists."""

import json

import pytest
import yaml

from peftbench.cli import main
from peftbench.validate import validate_suite_config
from peftbench.evaluate import evaluate_task
from peftbench.tasks.base import Example, Task


def write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


SENTENCES = [{"sentence": f"a {word} film", "label": label, "idx": i}
             for i, (word, label) in enumerate([("fine", 1), ("dull", 0), ("great", 1), ("bad", 0)])]


def suite(tmp_path, **changes):
    raw = {"name": "bad", "model": {"name": "tiny-random-llama", "device": "cpu"}, "methods": ["lora"],
           "tasks": [{"name": "sst2", "data_files": {"train": str(write_rows(tmp_path / "train.jsonl", SENTENCES)),
                                                     "test": str(write_rows(tmp_path / "test.jsonl", SENTENCES))}}],
           "train": {"max_steps": 1}, "output_dir": str(tmp_path / "runs")}
    raw.update(changes)
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def refused(tmp_path, capsys, path, *needles):
    """`peftbench run PATH` ends with one error line holding every needle, and writes nothing."""
    assert main(["run", str(path), "--no-progress"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    assert not (tmp_path / "runs").exists(), "a refused suite wrote runs"
    return errors[0]


def test_an_empty_training_file_is_refused_instead_of_looping_forever(tmp_path, capsys):
    path = suite(tmp_path)
    (tmp_path / "train.jsonl").write_text("")
    refused(tmp_path, capsys, path, str(tmp_path / "train.jsonl"), "no train examples")


def test_a_label_of_minus_one_names_the_file_and_line(tmp_path, capsys):
    path = suite(tmp_path)
    write_rows(tmp_path / "test.jsonl", SENTENCES[:2] + [{"sentence": "unlabelled", "label": -1, "idx": 9}])
    line = refused(tmp_path, capsys, path, f"{tmp_path / 'test.jsonl'} line 3", "label -1 is out of range")
    assert "unlabelled row" in line


def test_a_malformed_json_line_names_its_own_line(tmp_path, capsys):
    path = suite(tmp_path)
    text = (tmp_path / "train.jsonl").read_text().splitlines()
    (tmp_path / "train.jsonl").write_text("\n".join(text[:2] + ['{"sentence": "half a row", "lab'] + text[2:]) + "\n")
    refused(tmp_path, capsys, path, f"{tmp_path / 'train.jsonl'} line 3", "not valid JSON")


def test_binary_garbage_as_data_is_refused(tmp_path, capsys):
    path = suite(tmp_path)
    (tmp_path / "train.jsonl").write_bytes(b'{"sentence": "ok", "label": 1}\n' + bytes(range(128, 256)))
    refused(tmp_path, capsys, path, f"{tmp_path / 'train.jsonl'} line 2", "not UTF-8")


def test_a_row_in_another_schema_names_its_line_and_fields(tmp_path, capsys):
    path = suite(tmp_path)
    write_rows(tmp_path / "test.jsonl", [{"text": "an IMDB review", "label": 1}])
    refused(tmp_path, capsys, path, f"{tmp_path / 'test.jsonl'} line 1", "'sentence' is undefined", "row fields: label, text")


def test_a_key_given_twice_in_yaml_is_refused(tmp_path, capsys):
    path = suite(tmp_path)
    path.write_text(path.read_text() + "train:\n  max_steps: 2\n")
    refused(tmp_path, capsys, path, str(path), "duplicate key 'train'", "line")


@pytest.mark.parametrize("lr", ["1e400", ".inf", ".nan"])
def test_an_infinite_learning_rate_is_refused_before_training(tmp_path, capsys, lr):
    path = suite(tmp_path)
    path.write_text(path.read_text().replace("max_steps: 1", f"max_steps: 1\n  lr: {lr}"))
    refused(tmp_path, capsys, path, "train.lr", "finite number")


@pytest.mark.parametrize("field", ["name", "output_dir"])
def test_a_suite_that_would_write_outside_its_folder_is_refused(tmp_path, capsys, field):
    values = {"name": "..", "output_dir": str(tmp_path / "runs")}
    if field == "output_dir":
        (tmp_path / "a-file").write_text("not a folder")
        values = {"output_dir": str(tmp_path / "a-file")}
    line = refused(tmp_path, capsys, suite(tmp_path, **values), field)
    assert not (tmp_path / "results.sqlite").exists()
    assert ("is a file" in line) if field == "output_dir" else ("not starting with '.'" in line)


def test_a_model_folder_that_does_not_exist_is_refused(tmp_path, capsys):
    path = suite(tmp_path, model={"name": str(tmp_path / "no-such-model")})
    refused(tmp_path, capsys, path, "model.name", "no such folder")


def test_a_hub_model_that_cannot_be_fetched_offline_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = suite(tmp_path, model={"name": "nobody-has/this-model"})
    refused(tmp_path, capsys, path, "model.name", "HF_HUB_OFFLINE")


def test_a_method_listed_twice_is_refused(tmp_path, capsys):
    path = suite(tmp_path, methods=["lora", "ia3", {"name": "lora"}])
    refused(tmp_path, capsys, path, "methods[2]", "repeats methods[0]")
    with pytest.raises(ValueError, match="seeds"):
        validate_suite_config({"methods": ["lora"], "tasks": ["micro-math"], "seeds": [0, 1, 0]})


def test_a_prompt_longer_than_the_context_is_cut_and_counted_or_refused_by_the_tasks_rule():
    from peftbench.config import EvalConfig, ModelConfig
    from peftbench.errors import PeftbenchError
    from peftbench.models import load_model, load_tokenizer

    cfg = ModelConfig(name="tiny-random-llama", device="cpu")
    model, tokenizer = load_model(cfg), load_tokenizer(cfg)
    long = Example(prompt="word " * 20000 + "Answer:", answer=" yes")
    short = Example(prompt="Answer:", answer=" yes")
    task = Task(name="long", description="", load_split=lambda split: [long, short], metrics=("exact_match",))
    result = evaluate_task(model, tokenizer, task, [long, short], EvalConfig(max_new_tokens=2), show_progress=False)
    assert result["prompts_cut_to_context"] == 1 and result["samples"] == 2
    refusing = Task(name="strict", description="", load_split=task.load_split, metrics=("exact_match",),
                    long_prompts="refuse")
    with pytest.raises(PeftbenchError, match="1 prompts are longer"):
        evaluate_task(model, tokenizer, refusing, [long, short], EvalConfig(max_new_tokens=2), show_progress=False)
