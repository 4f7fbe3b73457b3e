"""The run directory's layout: its file names, and reading finished results back.

`run`, `sweep`, `report` and `analysis` all read and write these names; this small module is
what they share, so reading results needs neither torch nor the training code."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from peftbench.io import read_json

METRICS_FILE = "metrics.json"  # written last and atomically: its presence means the run finished
FAILURE_FILE = "failure.json"  # a run that raised: its reason (the run is tried again with --retry-failed)
ADAPTER_DIR = "adapter"
SPECTRAL_FILE = "spectral.json"
PATH_FILE = "path.json"
TRAJECTORY_FILE = "trajectory.json"


def is_finished(path: Path) -> bool:
    return (Path(path) / METRICS_FILE).is_file()


def stored(path: str | Path, name: str) -> Optional[dict]:
    """A stored analysis of a run (SPECTRAL_FILE, PATH_FILE, TRAJECTORY_FILE), or None when not run yet."""
    file = Path(path) / name
    return read_json(file) if file.is_file() else None


def load_results(root: str | Path) -> list[dict]:
    """Every finished result (metrics.json) under a folder, failures included."""
    root = Path(root)
    found = [read_json(p) for p in sorted(root.rglob(METRICS_FILE))]
    found += [read_json(p) for p in sorted(root.rglob(FAILURE_FILE)) if not (p.parent / METRICS_FILE).exists()]
    return found


def load_runs(root: str | Path) -> list[dict]:
    """Every metrics.json under `root`, with its folder, resolved config and stored analyses attached."""
    from peftbench.yamlio import load_yaml

    results = []
    for path in sorted(Path(root).rglob(METRICS_FILE)):
        metrics = read_json(path)
        metrics["_dir"] = str(path.parent)
        config = path.parent / "config.yaml"
        metrics["_config"] = load_yaml(config) if config.is_file() else {}
        metrics["_spectral"] = stored(path.parent, SPECTRAL_FILE)
        metrics["_path"] = stored(path.parent, PATH_FILE)
        metrics["_trajectory"] = stored(path.parent, TRAJECTORY_FILE)
        results.append(metrics)
    return results
