"""Write constraints.txt: the installed version of every package pyproject.toml names (base
and extras), after a green test run, so users can install exactly what was tested."""

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = """\
# The versions the test suite last passed with (python 3.11, CPU). Install exactly them with
#   pip install torch==2.13.0 -c constraints.txt -e ".[all]"
# (transformers 5.23 and 5.24 each broke peftbench once). Regenerate after a green run:
#   python scripts/freeze_constraints.py
"""


def requirement_names(project: dict) -> list[str]:
    extras = [r for reqs in project["optional-dependencies"].values() for r in reqs if not r.startswith("peftbench")]
    return sorted({re.split(r"[\[<>=~! ;]", r, maxsplit=1)[0].lower() for r in [*project["dependencies"], *extras]})


def main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = []
    for name in requirement_names(project):
        try:
            lines.append(f"{name}=={version(name).split('+')[0]}")  # no local label: a CUDA build satisfies it too
        except PackageNotFoundError:
            print(f"{name} is not installed; left out")
    (ROOT / "constraints.txt").write_text(HEADER + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
