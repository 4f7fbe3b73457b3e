"""The terminal leaderboard: one row per run, best score first, base model for reference."""

from __future__ import annotations

from typing import Optional, Sequence

from rich.table import Table


def _fmt(value: Optional[float], spec: str) -> str:
    return "-" if value is None else format(value, spec)


def leaderboard_rows(results: Sequence[dict]) -> list[dict]:
    rows = []
    for r in results:
        evaluation = r.get("eval") or {}
        train = r.get("train") or {}
        cost = r.get("cost") or {}
        rows.append(
            {
                "task": r.get("task"),
                "method": r.get("method"),
                "seed": r.get("seed"),
                "status": r.get("status"),
                "metric": evaluation.get("primary_metric"),
                "score": evaluation.get("score"),
                "trainable_percent": cost.get("trainable_percent"),
                "trainable_params": cost.get("trainable_params"),
                "final_loss": train.get("final_loss"),
                "train_seconds": train.get("seconds"),
                "pscp": r.get("pscp"),
                "peak_memory_gb": cost["peak_memory_bytes"] / 1e9 if cost.get("peak_memory_bytes") else None,
            }
        )
    return sorted(rows, key=lambda row: (row["task"] or "", -(row["score"] if row["score"] is not None else -1)))


def leaderboard_table(results: Sequence[dict], title: str = "peftbench leaderboard") -> Table:
    table = Table(title=title)
    for column, justify in [
        ("task", "left"), ("method", "left"), ("seed", "right"), ("status", "left"), ("metric", "left"),
        ("score %", "right"), ("PSCP", "right"), ("trainable", "right"), ("trainable %", "right"),
        ("peak mem GB", "right"), ("final loss", "right"), ("train s", "right"),
    ]:
        table.add_column(column, justify=justify)
    for row in leaderboard_rows(results):
        table.add_row(
            str(row["task"]), str(row["method"]), "-" if row["seed"] is None else str(row["seed"]),
            str(row["status"]), row["metric"] or "-",
            _fmt(None if row["score"] is None else 100 * row["score"], ".1f"), _fmt(row["pscp"], ".2f"),
            "-" if row["trainable_params"] is None else f"{row['trainable_params']:,}",
            _fmt(row["trainable_percent"], ".3f"), _fmt(row["peak_memory_gb"], ".2f"), _fmt(row["final_loss"], ".4f"),
            _fmt(row["train_seconds"], ".1f"),
        )
    return table
