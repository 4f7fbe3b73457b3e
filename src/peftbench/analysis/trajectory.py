"""The training trajectory: target and retention scored at checkpoints while a run trains
(`train.checkpoint_every`), drawn beside the interpolation path on the target-vs-retention
plane. Written to the run's trajectory.json after every point, so a crash keeps them."""

from __future__ import annotations

from pathlib import Path

from peftbench.io import atomic_write_json

TRAJECTORY_FILE = "trajectory.json"


class Trajectory:
    def __init__(self, path: Path, model, tokenizer, task, examples, cfg):
        self.path, self.model, self.tokenizer = Path(path), model, tokenizer
        self.task, self.examples, self.cfg = task, examples, cfg
        self.points: list[dict] = []

    def score(self, step: int) -> dict:
        from peftbench.evaluate import evaluate_task
        from peftbench.retention import score_retention

        point = {"step": step, "target": evaluate_task(self.model, self.tokenizer, self.task, self.examples,
                                                        self.cfg.eval, show_progress=False)["score"]}
        if self.cfg.retention:
            kept = score_retention(self.model, self.tokenizer, self.cfg.retention, self.cfg.eval)
            point.update(retention=kept["average"], cross_entropy=kept["cross_entropy"])
        return point

    def __call__(self, step: int) -> None:
        self.add(self.score(step))

    def add(self, point: dict) -> None:
        self.points.append(point)
        atomic_write_json(self.path / TRAJECTORY_FILE, self.points)
