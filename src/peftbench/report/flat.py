"""One flat row per run: the figures a spreadsheet or a dataframe wants, as CSV or JSON lines."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Optional

COLUMNS = ("run_id", "suite", "task", "method", "seed", "status", "metric", "scoring", "score", "trainable_params",
           "trainable_percent", "peak_memory_gb", "train_seconds", "tokens_per_s", "final_loss", "pscp",
           "forgetting_points", "transfer", "model", "peftbench", "transformers", "peft")


def flat_row(run: dict) -> dict:
    evaluation, cost, train = run.get("eval") or {}, run.get("cost") or {}, run.get("train") or {}
    versions = run.get("versions") or {}
    transfer = {name: e.get("score") for name, e in (run.get("transfer") or {}).items()}
    return {
        "run_id": run.get("run_id"), "suite": run.get("suite"), "task": run.get("task"), "method": run.get("method"),
        "seed": run.get("seed"), "status": run.get("status"), "metric": evaluation.get("primary_metric"),
        "scoring": evaluation.get("scoring"), "score": evaluation.get("score"),
        "trainable_params": cost.get("trainable_params"), "trainable_percent": cost.get("trainable_percent"),
        "peak_memory_gb": cost["peak_memory_bytes"] / 1e9 if cost.get("peak_memory_bytes") else None,
        "train_seconds": train.get("seconds"), "tokens_per_s": train.get("tokens_per_s"),
        "final_loss": train.get("final_loss"), "pscp": run.get("pscp"),
        "forgetting_points": (run.get("retention") or {}).get("forgetting_points"),
        "transfer": json.dumps(transfer) if transfer else None, "model": run.get("model"),
        "peftbench": versions.get("peftbench"), "transformers": versions.get("transformers"), "peft": versions.get("peft"),
    }


def flat_rows(results: list[dict]) -> list[dict]:
    return [flat_row(r) for r in sorted(results, key=lambda r: (str(r.get("task")), str(r.get("run_id"))))]


def write_rows(rows: list[dict], fmt: str, out: Optional[Path] = None) -> Optional[Path]:
    """CSV (a header, one row per run) or JSON lines, to `out` or stdout."""
    buffer = io.StringIO()
    if fmt == "csv":
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    else:
        buffer.writelines(json.dumps(row) + "\n" for row in rows)
    if out is None:
        sys.stdout.write(buffer.getvalue())
        return None
    from peftbench.io import atomic_write_text

    return atomic_write_text(out, buffer.getvalue())
