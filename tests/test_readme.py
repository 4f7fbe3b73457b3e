"""The README is true: every command it names exists, its config validates, its links resolve,
and the suites it names are shipped."""

import re
from pathlib import Path

import yaml

from peftbench.cli import build_parser, packaged_config
from peftbench.validate import validate_suite_config

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_command_the_readme_names_exists():
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    code = re.findall(r"```.*?```", README, re.S) + re.findall(r"`[^`\n]+`", README)
    named = {name for span in code for name in re.findall(r"peftbench ([a-z]+)", span)}
    assert named and named <= commands, named - commands
    assert len(README.splitlines()) <= 200


def test_the_readme_config_validates():
    block = re.search(r"## A config\n\n```yaml\n(.*?)```", README, re.S).group(1)
    suite = validate_suite_config(yaml.safe_load(block), "README.md")
    assert suite.tasks[0].transfer and suite.retention


def test_every_link_resolves_and_every_named_suite_is_shipped():
    for link in re.findall(r"\]\(([^)#]+)\)", README):
        assert (ROOT / link).exists(), link
    for name in set(re.findall(r"configs/([a-z0-9-]+)\.yaml", README)) | set(re.findall(r"peftbench run ([a-z0-9-]+)", README)):
        assert packaged_config(name).is_file(), name
