"""Where on a path from base to tuned model the target/retention trade-off is best, and
whether the final model overshot it (PEFT-Arena: final SFT checkpoints often do).

A path is a list of points {alpha, target, retention} (scores in [0, 1]); alpha 0 is the
base model and alpha 1 the tuned one. A trade-off maps the path to one value per point;
the best point maximises it. An overshoot is flagged when the best point lies before the
end (alpha < 1) and keeps real retention the final model lost.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from peftbench.registry import Registry

Tradeoff = Callable[[Sequence[dict]], list[float]]
TRADEOFFS: Registry[Tradeoff] = Registry("trade-off")
MIN_RETENTION_GAIN_POINTS = 1.0  # below this a retention difference is noise on a 100-200 example suite
MIN_TARGET_GAIN_POINTS = 1.0  # a path that gains less on the target than this has no trade-off to judge


@TRADEOFFS.decorator("balanced")
def balanced(points: Sequence[dict]) -> list[float]:
    """Mean of the normalised target gain (0 at the base, 1 at the path's best target) and
    the retention relative to the base (1 = all kept): the point nearest the upper right of
    the target-vs-retention plane."""
    base = _at_base(points)
    best_gain = max(p["target"] for p in points) - base["target"]
    values = []
    for p in points:
        gain = (p["target"] - base["target"]) / best_gain if best_gain > 0 else 0.0
        kept = p["retention"] / base["retention"] if base["retention"] > 0 else 1.0
        values.append((gain + kept) / 2)
    return values


@TRADEOFFS.decorator("target")
def target_only(points: Sequence[dict]) -> list[float]:
    """The target score alone (retention ignored): where the path peaks on the task."""
    return [p["target"] for p in points]


def _at_base(points: Sequence[dict]) -> dict:
    return min(points, key=lambda p: abs(p["alpha"]))


def _at_end(points: Sequence[dict]) -> dict:
    return min(points, key=lambda p: abs(p["alpha"] - 1))


def best_point(points: Sequence[dict], tradeoff: str = "balanced",
               min_retention_gain_points: float = MIN_RETENTION_GAIN_POINTS) -> dict:
    """The best alpha under `tradeoff` and the overshoot verdict.

    Ties go to the smaller alpha (less change for the same value)."""
    if not points:
        raise ValueError("an empty path has no best point")
    if any(p.get("retention") is None for p in points):
        return {"tradeoff": tradeoff, "best_alpha": None, "overshoot": None,
                "reason": "no retention scores on the path: the run has no retention suite"}
    gain = 100 * (max(p["target"] for p in points) - _at_base(points)["target"])
    if gain < MIN_TARGET_GAIN_POINTS:
        return {"tradeoff": tradeoff, "best_alpha": None, "overshoot": None,
                "reason": f"the path gains {gain:.1f} target points over the base (< {MIN_TARGET_GAIN_POINTS:g}): "
                          "nothing was learned, so there is no trade-off to judge"}
    values = TRADEOFFS.get(tradeoff)(points)
    order = sorted(range(len(points)), key=lambda i: (-values[i], points[i]["alpha"]))
    best = points[order[0]]
    end = _at_end(points)
    retention_gain = 100 * (best["retention"] - end["retention"])
    overshoot: Optional[bool] = best["alpha"] < 1 and retention_gain >= min_retention_gain_points
    return {
        "tradeoff": tradeoff, "best_alpha": best["alpha"], "best_target": best["target"],
        "best_retention": best["retention"], "value": values[order[0]], "overshoot": overshoot,
        "retention_gain_points_over_final": retention_gain,
        "target_loss_points_from_final": 100 * (end["target"] - best["target"]),
    }
