"""Experiment tracking: `train.report_to: [tensorboard, mlflow, wandb]`.

The training loop writes every record (loss, lr, throughput, validation loss) to the
run's own `train_log.jsonl`; trackers receive the same records. Each tracker imports
its library only when asked for, and a missing library is a clear error naming the
package to install. Where they write: tensorboard to `<run>/tensorboard`; mlflow to its
configured tracking URI (MLFLOW_TRACKING_URI; default the sqlite file `<run>/mlflow.db`); wandb to its
project (WANDB_PROJECT, default `peftbench`; WANDB_MODE=offline works without network).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Callable, Protocol

from peftbench.errors import PeftbenchError
from peftbench.registry import Registry


class Tracker(Protocol):
    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


TRACKERS: Registry[Callable[[Path, str, dict], Tracker]] = Registry("tracker")


def _require(module: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise PeftbenchError(f"train.report_to names a tracker whose library is missing: pip install {package}") from None


def final_record(metrics: dict, step: int) -> dict[str, Any]:
    """A finished run's scores for the trackers, under `final/`: the task's metrics, PSCP,
    retention and transfer scores (the training log alone says nothing of the result)."""
    evaluation = metrics.get("eval") or {}
    record: dict[str, Any] = {"step": step, **{f"final/{k}": v for k, v in (evaluation.get("scores") or {}).items()}}
    record["final/score"] = evaluation.get("score")
    record["final/pscp"] = metrics.get("pscp")
    retention = metrics.get("retention") or {}
    record["final/forgetting_points"] = retention.get("forgetting_points")
    record["final/retention"] = (retention.get("tuned") or {}).get("average")
    for name, scored in (metrics.get("transfer") or {}).items():
        record[f"final/transfer/{name}"] = scored.get("score")
    return {k: v for k, v in record.items() if v is not None}


def _scalars(record: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in record.items() if k != "step" and isinstance(v, (int, float)) and v is not None}


class _TensorBoard:
    def __init__(self, run_dir: Path, name: str, config: dict):
        _require("tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.writer.add_text("config", f"```\n{config}\n```")

    def write(self, record):
        for key, value in _scalars(record).items():
            self.writer.add_scalar(key if "/" in key else f"train/{key}", value, record["step"])

    def close(self):
        self.writer.close()


class _MLflow:
    def __init__(self, run_dir: Path, name: str, config: dict):
        self.mlflow = _require("mlflow", "mlflow-skinny")
        if not os.environ.get("MLFLOW_TRACKING_URI"):  # mlflow's file store is deprecated: a sqlite file
            self.mlflow.set_tracking_uri(f"sqlite:///{(run_dir / 'mlflow.db').resolve()}")
        self.mlflow.set_experiment(config.get("suite", "peftbench"))
        self.run = self.mlflow.start_run(run_name=name)
        self.mlflow.log_params(_flat(config))

    def write(self, record):
        self.mlflow.log_metrics(_scalars(record), step=record["step"])

    def close(self):
        self.mlflow.end_run()


class _WandB:
    def __init__(self, run_dir: Path, name: str, config: dict):
        wandb = _require("wandb", "wandb")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "peftbench"), name=name, config=config,
                              dir=str(run_dir), reinit="create_new")

    def write(self, record):
        self.run.log(_scalars(record), step=record["step"])

    def close(self):
        self.run.finish()


TRACKERS.register("tensorboard", _TensorBoard)
TRACKERS.register("mlflow", _MLflow)
TRACKERS.register("wandb", _WandB)


def _flat(mapping: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


class Fanout:
    """One log the loop writes to: the run's JSON-lines log plus every tracker."""

    def __init__(self, *sinks):
        self.sinks = [s for s in sinks if s is not None]

    def write(self, record: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.write(record)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def open_trackers(names: list[str], run_dir: Path, name: str, config: dict) -> list[Tracker]:
    return [TRACKERS.get(n)(run_dir, name, config) for n in names]
