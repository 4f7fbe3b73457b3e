"""The import graph has no cycle, and reading results needs no training code: `report` and the
run directory import neither torch nor transformers."""

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "peftbench").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def module_level_imports(name: str, path: Path, known: dict) -> set[str]:
    """peftbench modules `name` imports when it loads: its module-level imports, and the
    __init__ of every other package they pass through (Python runs it first)."""
    out = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("peftbench"):
            targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                       for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.startswith("peftbench")]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                package = ".".join(parts[:i])
                if package in known and package != name and not name.startswith(package + "."):
                    out.add(package)
    return out


def test_no_import_cycle():
    known = modules()
    graph = {name: module_level_imports(name, path, known) for name, path in known.items()}
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


def test_reading_results_imports_no_training_code():
    code = ("import sys, peftbench.report.build, peftbench.rundir, peftbench.report.pscp_table; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
