"""YAML in: a loader that reads `1e-4` as a number and refuses a key given twice, one-line
messages that name the line, and `a.b.c=value` overrides."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from peftbench.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-4` as a float (YAML 1.1 wants `1.0e-4`) and refuses a key
    given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {seen[key]}): give each key once",
                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: where in the file, and what is wrong there."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"not valid YAML: {where}{' '.join(problem.split())}"


def parse_yaml_documents(text: str) -> list[Any]:
    """Every document of a multi-document YAML text, read as `parse_yaml` reads one."""
    return list(yaml.load_all(text, Loader=_Loader))


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError([("<file>", f"no such config file: {path}")])
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError([("<yaml>", yaml_problem(exc))], source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([("<file>", f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                            "is it the right file?")], source=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError([("<root>", "the file must hold a mapping of fields")], source=str(path))
    return data


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides (value parsed as YAML) to a copy of a raw config."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError([("--set", f"expected KEY=VALUE like train.lr=1e-4, got {item!r}")])
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if isinstance(child, str) and part in ("method", "task"):
                child = {"name": child}  # expand the shorthand so a field can be set
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise ConfigError([(key, f"cannot set a field inside {part!r}, which is not a mapping")])
            node[part] = child
            node = child
        node[parts[-1]] = parse_yaml(value)
    return raw
