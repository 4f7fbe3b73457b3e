"""The report's figures (matplotlib, Agg): each function returns PNG bytes, or None when
the results hold nothing to draw (e.g. no rank x lr grid)."""

from __future__ import annotations

import io
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Optional, Sequence

from peftbench.report.summary import MethodSummary, pareto_front


def _figure(width: float, height: float, grid: tuple[int, int] | None = None):
    """pyplot, the figure, and one axes (or, with `grid=(rows, cols)`, a 2-D array of them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = grid or (1, 1)
    fig, axes = plt.subplots(rows, cols, figsize=(width, height), dpi=110, squeeze=grid is None)
    return plt, fig, axes


def _png(plt, fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def scores_by_task(rows: Sequence[MethodSummary], task: str, base: Optional[float]) -> bytes:
    """Horizontal bars: each method's mean score with its 95% CI; the base model as a line."""
    ranked = [r for r in rows if r.task == task][::-1]
    plt, fig, ax = _figure(7.5, 0.32 * len(ranked) + 1.4)
    y = range(len(ranked))
    ax.barh(list(y), [100 * r.mean for r in ranked], color=["#9aa5b1" if r.not_significant else "#3b6ea5" for r in ranked],
            xerr=[[100 * (r.mean - r.low) for r in ranked], [100 * (r.high - r.mean) for r in ranked]], capsize=3)
    ax.set_yticks(list(y), [r.method for r in ranked], fontsize=8)
    if base is not None:
        ax.axvline(100 * base, color="#c0392b", linestyle="--", label=f"base model {100 * base:.1f}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("score (%), mean and 95% CI over seeds; grey: not significantly below the best")
    ax.set_title(task)
    return _png(plt, fig)


def _panels_per_task(points: Sequence[MethodSummary], title: str, height: float, draw) -> bytes:
    """One panel per task (so method labels do not pile up), `draw(ax, task, rows)` fills each."""
    tasks = sorted({r.task for r in points})
    cols = min(3, len(tasks))
    rows_n = math.ceil(len(tasks) / cols)
    plt, fig, axes = _figure(4.6 * cols, height * rows_n, grid=(rows_n, cols))
    for ax, task in zip(axes.flat, tasks):
        draw(ax, task, [r for r in points if r.task == task])
        ax.set_title(task, fontsize=10)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    fig.suptitle(title)
    return _png(plt, fig)


def _label_points(ax, rows: Sequence[MethodSummary], xy) -> None:
    for r, (x, y) in zip(rows, xy):
        ax.annotate(r.method, (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")


def cost_vs_score(rows: Sequence[MethodSummary]) -> Optional[bytes]:
    """Trainable parameters (% of the base, log scale) against score, per task."""
    points = [r for r in rows if r.trainable_percent]
    if not points:
        return None

    def draw(ax, task, mine):
        xy = [(r.trainable_percent, 100 * r.mean) for r in mine]
        ax.scatter(*zip(*xy), color="#3b6ea5", alpha=0.8)
        _label_points(ax, mine, xy)
        ax.set_xscale("log")
        ax.set_xlabel("trainable params (% of base, log)", fontsize=8)
        ax.set_ylabel("score (%)", fontsize=8)

    return _panels_per_task(points, "cost vs performance", 3.6, draw)


def target_vs_retention(rows: Sequence[MethodSummary], bases: dict[str, float]) -> Optional[bytes]:
    """Retained general ability against target score, per task: the base model, each
    method, and the Pareto front (no method better on both axes)."""
    points = [r for r in rows if r.retention is not None]
    if not points:
        return None

    def draw(ax, task, mine):
        xy = [(100 * r.retention, 100 * r.mean) for r in mine]
        front = sorted((xy[i] for i in pareto_front(xy)), key=lambda p: p[0])
        ax.scatter(*zip(*xy), color="#3b6ea5", alpha=0.8, label="methods")
        ax.plot(*zip(*front), color="#e67e22", linewidth=1.2, marker="o", markerfacecolor="none", label="Pareto front")
        _label_points(ax, mine, xy)
        for index, r in enumerate(mine):
            _draw_path(ax, r, _COLORS[index % len(_COLORS)])
            _draw_trajectory(ax, r, _COLORS[index % len(_COLORS)])
        base_retention = next((r.base_retention for r in mine if r.base_retention is not None), None)
        if base_retention is not None and task in bases:
            ax.scatter([100 * base_retention], [100 * bases[task]], marker="*", s=120, color="#c0392b", label="base model")
        ax.set_xlabel("retention: general-skills average (%)", fontsize=8)
        ax.set_ylabel("target score (%)", fontsize=8)
        ax.legend(fontsize=6, loc="best")

    return _panels_per_task(points, "target vs retention (upper right is best)", 3.8, draw)


# matplotlib's tab10 plus two: twelve colours that stay apart when methods share a panel
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#000000", "#aec7e8")


def _plane_line(ax, points: list, color: str, **style) -> list:
    """Points {target, retention} (those with a retention score) as a line on the plane."""
    points = [p for p in points if p.get("retention") is not None]
    if len(points) >= 2:
        ax.plot([100 * p["retention"] for p in points], [100 * p["target"] for p in points], color=color,
                linewidth=0.9, alpha=0.8, **style)
    return points


def _draw_path(ax, row: MethodSummary, color: str) -> None:
    """The run's interpolation path (dashed, alphas labelled at the ends) and its best
    trade-off point (circled), when `peftbench analyze interpolate` scored it."""
    points = _plane_line(ax, (row.path or {}).get("points") or [], color, linestyle="--", marker=".", markersize=3)
    if len(points) < 2:
        return
    for p in (points[0], points[-1]):
        ax.annotate(f"a={p['alpha']:g}", (100 * p["retention"], 100 * p["target"]), fontsize=5, color=color,
                    xytext=(2, -6), textcoords="offset points")
    best = (row.path or {}).get("best") or {}
    if best.get("best_alpha") is not None:
        ax.scatter([100 * best["best_retention"]], [100 * best["best_target"]], s=60, facecolors="none",
                   edgecolors=color, linewidths=1.2)


def _draw_trajectory(ax, row: MethodSummary, color: str) -> None:
    """The run's checkpoints from base to final model (dotted), when it recorded them."""
    _plane_line(ax, row.trajectory or [], color, linestyle=":", marker="x", markersize=3)


def spectral_profiles(rows: Sequence[MethodSummary], task: str) -> Optional[bytes]:
    """Mean retention dP(i) and adaptation E(i) profiles over the adapted weights, against
    the relative singular index (0 = largest singular value), one curve per method."""
    mine = [r for r in rows if r.task == task and r.spectral_profiles]
    if not mine:
        return None
    plt, fig, axes = _figure(10, 3.6, grid=(1, 2))
    for index, r in enumerate(mine):
        for ax, key in zip(axes[0], ("retention", "adaptation")):
            profile = r.spectral_profiles[key]
            xs = [i / (len(profile) - 1) for i in range(len(profile))]
            ax.plot(xs, profile, color=_COLORS[index % len(_COLORS)], linewidth=1, label=r.method)
    for ax, title in zip(axes[0], ("retention dP(i) = |u_i^T W_ft v_i - s_i|", "adaptation E(i) = ||dW v_i||")):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("singular index / rank (0 = largest)", fontsize=8)
        ax.set_yscale("log")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{task}: spectral profiles of the update (mean over adapted weights)")
    return _png(plt, fig)


def rank_lr_heatmap(rows: Sequence[MethodSummary], task: str) -> Optional[bytes]:
    """Mean score over a rank x learning-rate grid of one method, when its runs form one."""
    grids: dict[str, dict[tuple[int, float], list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row.task != task:
            continue
        for run in row.runs:
            config = run.get("_config") or {}
            r, lr = (config.get("method") or {}).get("r"), (config.get("train") or {}).get("lr")
            if r is not None and lr is not None:
                grids[run["method"]][(int(r), float(lr))].append(run["eval"]["score"])
    chosen = [(m, cells) for m, cells in sorted(grids.items())
              if len({k[0] for k in cells}) >= 2 and len({k[1] for k in cells}) >= 2]
    if not chosen:
        return None
    method, cells = chosen[0]
    ranks, lrs = sorted({k[0] for k in cells}), sorted({k[1] for k in cells})
    grid = [[100 * sum(cells[(r, lr)]) / len(cells[(r, lr)]) if cells.get((r, lr)) else math.nan for lr in lrs] for r in ranks]
    plt, fig, ax = _figure(1.3 * len(lrs) + 2.5, 0.55 * len(ranks) + 1.6)
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
    ax.set_yticks(range(len(ranks)), [str(r) for r in ranks])
    for i, line in enumerate(grid):
        for j, value in enumerate(line):
            if not math.isnan(value):
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", color="white", fontsize=8)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("rank r")
    ax.set_title(f"{task}, {method}: score (%) over rank x learning rate")
    fig.colorbar(image, ax=ax, label="score (%)")
    return _png(plt, fig)


def training_curves(rows: Sequence[MethodSummary], task: str) -> Optional[bytes]:
    """Training loss against step for each method's first seed."""
    plt, fig, ax = _figure(7.5, 4.2)
    drawn = 0
    for row in (r for r in rows if r.task == task):
        log = Path(row.runs[0].get("_dir", "")) / "train_log.jsonl"
        if not log.is_file():
            continue
        points = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        points = [p for p in points if "loss" in p and "step" in p]
        if points:
            ax.plot([p["step"] for p in points], [p["loss"] for p in points], label=row.method, linewidth=1.2)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss (answer tokens)")
    ax.set_yscale("log")
    ax.set_title(f"{task}: training curves (first seed)")
    ax.legend(fontsize=7, ncol=2)
    return _png(plt, fig)
