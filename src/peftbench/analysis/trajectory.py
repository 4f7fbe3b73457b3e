"""The training trajectory: target and retention scored at checkpoints while a run trains
(`train.checkpoint_every`), drawn beside the interpolation path on the target-vs-retention
plane. Written to the run's trajectory.json after every point, so a crash keeps them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from peftbench.io import atomic_write_json
from peftbench.rundir import TRAJECTORY_FILE  # noqa: F401



def point(step: int, target: float, retention: Optional[dict] = None) -> dict:
    """One trajectory point from a target score and a retention record (score_retention's)."""
    out = {"step": step, "target": target}
    if retention is not None:
        out.update(retention=retention["average"], cross_entropy=retention["cross_entropy"])
    return out


class Trajectory:
    def __init__(self, path: Path, model, tokenizer, task, examples, cfg):
        self.path, self.model, self.tokenizer = Path(path), model, tokenizer
        self.task, self.examples, self.cfg = task, examples, cfg
        self.points: list[dict] = []

    def score(self, step: int) -> dict:
        from peftbench.evaluate import evaluate_task
        from peftbench.retention import score_retention

        target = evaluate_task(self.model, self.tokenizer, self.task, self.examples, self.cfg.eval,
                               show_progress=False)["score"]
        kept = score_retention(self.model, self.tokenizer, self.cfg.retention, self.cfg.eval) if self.cfg.retention else None
        return point(step, target, kept)

    def __call__(self, step: int) -> None:
        self.add(self.score(step))

    def add(self, point: dict) -> None:
        self.points.append(point)
        atomic_write_json(self.path / TRAJECTORY_FILE, self.points)
