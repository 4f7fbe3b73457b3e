import pytest

from peftbench.config import SuiteConfig
from peftbench.validate import load_run_config, validate_run_config, validate_suite_config
from peftbench.yamlio import apply_overrides, parse_yaml
from peftbench.errors import ConfigError
from peftbench.run import run_id

GOOD = {"method": {"name": "lora"}, "task": {"name": "toy-sentiment"}}


def problems_of(raw):
    with pytest.raises(ConfigError) as info:
        validate_run_config(raw)
    return dict(info.value.problems), str(info.value)


def test_valid_config_fills_method_defaults():
    cfg = validate_run_config(GOOD)
    assert cfg.method.params == {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"], "bias": "none"}
    assert cfg.train.lr == 2e-4


def test_unknown_method_names_field_and_choices():
    problems, text = problems_of({**GOOD, "method": {"name": "lorax"}})
    assert "method.name" in problems
    assert "'lorax'" in problems["method.name"] and "lora" in problems["method.name"]
    assert "method.name" in text


def test_negative_lr_names_field_value_and_bound():
    problems, _ = problems_of({**GOOD, "train": {"lr": -0.1}})
    assert "greater than 0" in problems["train.lr"] and "-0.1" in problems["train.lr"]


def test_missing_task():
    problems, _ = problems_of({"method": {"name": "lora"}})
    assert problems == {"task": "required field is missing"}


def test_wrong_type():
    problems, _ = problems_of({**GOOD, "train": {"batch_size": "eight"}})
    assert "integer" in problems["train.batch_size"] and "'eight'" in problems["train.batch_size"]


def test_unknown_key_lists_allowed_fields():
    problems, _ = problems_of({**GOOD, "train": {"lrr": 1e-4}})
    assert problems["train.lrr"].startswith("unknown field")
    assert "lr" in problems["train.lrr"] and "batch_size" in problems["train.lrr"]


def test_unknown_task():
    problems, _ = problems_of({**GOOD, "task": "no-such-task"})
    assert "no-such-task" in problems["task.name"] and "toy-sentiment" in problems["task.name"]


def test_bad_method_hyperparameters_are_named():
    problems, _ = problems_of({**GOOD, "method": {"name": "lora", "r": 0, "rank": 4}})
    assert "greater than 0" in problems["method.r"]
    assert problems["method.rank"].startswith("unknown field") and "alpha" in problems["method.rank"]


def test_bad_device_and_literal():
    problems, _ = problems_of({**GOOD, "model": {"device": "gpu"}, "train": {"lr_scheduler": "exp"}})
    assert "gpu" in problems["model.device"] and "cuda:N" in problems["model.device"]
    assert "'cosine'" in problems["train.lr_scheduler"]


def test_all_problems_reported_at_once():
    problems, _ = problems_of({"method": {"name": "lora"}, "task": "toy-sentiment", "train": {"lr": 0, "epochs": 0}})
    assert {"train.lr", "train.epochs"} <= set(problems)


def test_overrides_and_yaml_floats(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("method: lora\ntask: toy-sentiment\ntrain:\n  lr: 1e-4\n")
    cfg = load_run_config(path, ["train.batch_size=4", "method.r=16", "eval.do_sample=true"])
    assert cfg.train.lr == 1e-4 and isinstance(cfg.train.lr, float)
    assert cfg.train.batch_size == 4 and cfg.method.params["r"] == 16 and cfg.eval.do_sample is True
    assert parse_yaml("x: 5e-3")["x"] == 5e-3


def test_malformed_override_is_an_error():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["train.lr"])


def test_suite_expands_to_unique_stable_runs():
    suite = validate_suite_config(
        {"name": "s", "methods": [{"name": "lora", "r": 4}, {"name": "lora", "r": 8}], "tasks": ["toy-sentiment"],
         "seeds": [1, 2, 3]}
    )
    runs = suite.expand()
    ids = [run_id(r) for r in runs]
    assert len(runs) == 6 and len(set(ids)) == 6
    assert [r.train.seed for r in runs[:3]] == [1, 2, 3]
    assert ids == [run_id(r) for r in suite.expand()]  # deterministic identity


def test_suite_errors_name_list_positions():
    with pytest.raises(ConfigError) as info:
        validate_suite_config({"methods": [{"name": "lora"}, {"name": "nope"}], "tasks": ["toy-sentiment", "x"]})
    problems = dict(info.value.problems)
    assert "methods[1].name" in problems and "tasks[1].name" in problems


def test_shipped_configs_validate():
    from peftbench.cli import packaged_config

    for path in packaged_config("x").parent.glob("*.yaml"):
        from peftbench.validate import load_suite_config

        assert isinstance(load_suite_config(path), SuiteConfig)


def test_code_tasks_need_explicit_opt_in():
    with pytest.raises(ConfigError) as info:
        validate_run_config({"method": "lora", "task": "micro-code"})
    message = dict(info.value.problems)["task.allow_code_execution"]
    assert "allow_code_execution: true" in message and "sandbox" in message
    cfg = validate_run_config({"method": "lora", "task": {"name": "micro-code", "allow_code_execution": True}})
    assert cfg.task.allow_code_execution


def test_a_method_entry_may_set_its_own_learning_rate():
    suite = validate_suite_config({"name": "x", "methods": [{"name": "lora", "lr": 1e-3}, "full"],
                                   "tasks": ["toy-sentiment"], "train": {"lr": 1e-4}})
    lrs = {run.method.name: run.train.lr for run in suite.expand()}
    assert lrs == {"lora": 1e-3, "full": 1e-4}
    run = validate_run_config({"method": {"name": "lora", "lr": 5e-3}, "task": "toy-sentiment"})
    assert run.train.lr == 5e-3 and run.method.lr is None
    with pytest.raises(ConfigError, match=r"methods\[0\].lr"):
        validate_suite_config({"name": "x", "methods": [{"name": "lora", "lr": -1}], "tasks": ["toy-sentiment"]})
