"""Register every task described in `tasks/catalog/*.yaml` (one file per family), and the
YAML task files of the folders in PEFTBENCH_INCLUDE_PATH (`--include-path DIR`): a user adds
a task without forking."""

from __future__ import annotations

import os
from pathlib import Path

from peftbench.tasks.spec import register_spec_file

CATALOG_DIR = Path(__file__).with_name("catalog")
INCLUDE_PATH_ENV = "PEFTBENCH_INCLUDE_PATH"

for _path in sorted(CATALOG_DIR.glob("*.yaml")):
    register_spec_file(_path)


def register_include_path(folders: str | None = None) -> list[str]:
    """Register the task YAMLs of each folder (os.pathsep-separated; default: the environment's)."""
    from peftbench.errors import PeftbenchError

    names = []
    for folder in filter(None, (folders if folders is not None else os.environ.get(INCLUDE_PATH_ENV, "")).split(os.pathsep)):
        if not Path(folder).is_dir():
            raise PeftbenchError(f"--include-path {folder}: no such folder")
        for path in sorted(Path(folder).glob("*.yaml")):
            try:
                names += [task.name for task in register_spec_file(path, overwrite=True)]
            except ValueError as exc:
                raise PeftbenchError(str(exc)) from None
    return names


register_include_path()
