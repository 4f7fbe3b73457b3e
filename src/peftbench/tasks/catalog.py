"""Register every task described in `tasks/catalog/*.yaml` (one file per family)."""

from __future__ import annotations

from pathlib import Path

from peftbench.tasks.spec import register_spec_file

CATALOG_DIR = Path(__file__).with_name("catalog")

for _path in sorted(CATALOG_DIR.glob("*.yaml")):
    register_spec_file(_path)
