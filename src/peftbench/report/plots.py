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


def _png(plt, fig, tight: bool = True) -> bytes:
    buffer = io.BytesIO()
    if tight:
        fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _style_of(methods) -> dict[str, dict]:
    """One colour and marker per method, by sorted name, so a method looks the same in every
    figure of a report; 20 colours x 4 markers keep up to 80 methods apart."""
    ordered = sorted(set(methods))
    return {m: {"color": _COLORS[i % len(_COLORS)], "marker": _MARKERS[(i // len(_COLORS)) % len(_MARKERS)],
                "linestyle": _LINESTYLES[(i // len(_COLORS)) % len(_LINESTYLES)]}
            for i, m in enumerate(ordered)}


def _handles(axes) -> dict:
    """Label -> legend handle over several axes, each label once (a method drawn in two panels)."""
    handles: dict = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    return handles


def _legend_outside(ax, fontsize: int = 8, sources=None) -> None:
    """The legend to the right of `ax`, where it cannot cover data; with `sources`, it lists
    what every one of those axes drew."""
    handles = _handles(sources if sources is not None else [ax])
    if handles:
        ax.legend(list(handles.values()), list(handles), fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0, ncol=1 if len(handles) <= 16 else 2, frameon=False)


def _readable_log_y(ax) -> None:
    """A log y axis with plain labels (0.02, 0.05, 0.1, 2, 3, 5, 10), not 2 x 10^0: labels
    at 1-2-5 steps on a short range, at powers of ten on a long one, none on minor ticks."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    low, high = ax.get_ylim()
    decades = math.log10(high / low) if low > 0 else math.inf
    subs = (1.0, 2.0, 3.0, 5.0) if decades < 1 else (1.0, 2.0, 5.0) if decades < 2 else (1.0,)
    ax.yaxis.set_major_locator(LogLocator(subs=subs))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


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
    # scores are percentages: start at 0, and keep a readable range when every score is 0
    top = max([100 * r.high for r in ranked] + [100 * (base or 0)])
    ax.set_xlim(0, max(5.0, 1.08 * top))
    ax.set_xlabel("score (%), mean and 95% CI over seeds; grey: not significantly below the best")
    ax.set_title(task)
    return _png(plt, fig)


def _panels_per_task(points: Sequence[MethodSummary], title: str, height: float, draw) -> bytes:
    """One panel per task, `draw(ax, task, rows, styles)` fills each; one legend for the
    whole figure (method -> colour and marker) below the panels, not text on the points,
    which piles up where methods share a parameter count."""
    tasks = sorted({r.task for r in points})
    cols = min(3, len(tasks))
    rows_n = math.ceil(len(tasks) / cols)
    styles = _style_of(r.method for r in points)
    plt, fig, axes = _figure(4.8 * cols + 0.6, height * rows_n + 0.35 * math.ceil(len(styles) / 6) + 0.8,
                             grid=(rows_n, cols))
    for ax, task in zip(axes.flat, tasks):
        draw(ax, task, [r for r in points if r.task == task], styles)
        ax.set_title(task, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    handles = _handles(axes.flat)
    fig.suptitle(title)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(6, len(handles)), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.06 * math.ceil(len(handles) / 6) / rows_n + 0.02, 1, 1))
    return _png(plt, fig, tight=False)


def _scatter_methods(ax, rows: Sequence[MethodSummary], xy, styles) -> None:
    """Each method's point in its own colour and marker, labelled for the figure's legend."""
    for r, (x, y) in zip(rows, xy):
        style = styles[r.method]
        ax.scatter([x], [y], color=style["color"], marker=style["marker"], s=36, alpha=0.9, label=r.method,
                   edgecolors="white", linewidths=0.4)


def cost_vs_score(rows: Sequence[MethodSummary]) -> Optional[bytes]:
    """Trainable parameters (% of the base, log scale) against score, per task."""
    points = [r for r in rows if r.trainable_percent]
    if not points:
        return None

    def draw(ax, task, mine, styles):
        xy = [(r.trainable_percent, 100 * r.mean) for r in mine]
        _scatter_methods(ax, mine, xy, styles)
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

    def draw(ax, task, mine, styles):
        xy = [(100 * r.retention, 100 * r.mean) for r in mine]
        front = sorted((xy[i] for i in pareto_front(xy)), key=lambda p: p[0])
        # a wide translucent grey band: no method's colour, and the points stay visible on it
        ax.plot(*zip(*front), color="#555555", linewidth=4, alpha=0.3, solid_capstyle="round", zorder=1,
                label="Pareto front")
        _scatter_methods(ax, mine, xy, styles)
        for r in mine:
            _draw_path(ax, r, styles[r.method]["color"])
            _draw_trajectory(ax, r, styles[r.method]["color"])
        # the line styles explained once, in the figure legend
        if any((r.path or {}).get("points") for r in mine):
            ax.plot([], [], color="#555555", linestyle="--", marker=".", label="interpolation base -> tuned (a = alpha)")
            ax.scatter([], [], s=60, facecolors="none", edgecolors="#555555", label="best trade-off on the path")
        if any(r.trajectory for r in mine):
            ax.plot([], [], color="#555555", linestyle=":", marker="x", markersize=3, label="training checkpoints")
        base_retention = next((r.base_retention for r in mine if r.base_retention is not None), None)
        if base_retention is not None and task in bases:
            ax.scatter([100 * base_retention], [100 * bases[task]], marker="*", s=140, color="#c0392b", label="base model",
                       zorder=3)
        ax.set_xlabel("retention: general-skills average (%)", fontsize=8)
        ax.set_ylabel("target score (%)", fontsize=8)

    return _panels_per_task(points, "target vs retention (upper right is best)", 3.8, draw)


# matplotlib's tab10 and its ten darker/lighter partners reordered so neighbours differ;
# past 20 methods the marker and line style change instead
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#000000", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
           "#dbdb8d", "#9edae5")
_MARKERS = ("o", "s", "^", "D")
_LINESTYLES = ("-", "--", "-.", ":")


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
    styles = _style_of(r.method for r in mine)
    plt, fig, axes = _figure(11.5, 3.8, grid=(1, 2))
    for r in mine:
        style = styles[r.method]
        for ax, key in zip(axes[0], ("retention", "adaptation")):
            profile = r.spectral_profiles[key]
            xs = [i / (len(profile) - 1) for i in range(len(profile))]
            ax.plot(xs, profile, color=style["color"], linestyle=style["linestyle"], linewidth=1, label=r.method)
    for ax, title in zip(axes[0], ("retention dP(i) = |u_i^T W_ft v_i - s_i|", "adaptation E(i) = ||dW v_i||")):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("singular index / rank (0 = largest)", fontsize=8)
        ax.set_yscale("log")
        _readable_log_y(ax)
        ax.grid(alpha=0.3)
    _legend_outside(axes[0][1], fontsize=7)
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


def _training_phases(run_dir: str) -> tuple[list[dict], list[dict]]:
    """A run's train_log split into its supervised steps (cross-entropy loss) and its GRPO
    steps (they log a reward, their loss is a policy objective near 0 and their step
    count restarts): the two do not share an axis."""
    log = Path(run_dir) / "train_log.jsonl"
    if not log.is_file():
        return [], []
    points = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    points = [p for p in points if "step" in p]
    return ([p for p in points if "reward" not in p and "loss" in p],
            [p for p in points if "reward" in p])


_REWARD_WINDOW = 5  # GRPO rewards of one small group swing wildly from step to step


def _moving_average(values: list[float], window: int) -> list[float]:
    """Mean of each value and the up to `window - 1` before it (same length as `values`)."""
    return [sum(values[max(0, i - window + 1): i + 1]) / (i + 1 - max(0, i - window + 1)) for i in range(len(values))]


def training_curves(rows: Sequence[MethodSummary], task: str) -> Optional[bytes]:
    """Each method's first seed: supervised loss against step (log scale) and, for GRPO
    runs, the mean reward against GRPO step in a second panel."""
    mine = [r for r in rows if r.task == task]
    styles = _style_of(r.method for r in mine)
    phases = {r.method: _training_phases(r.runs[0].get("_dir", "")) for r in mine}
    has_rl = any(rl for _, rl in phases.values())
    if not any(sft or rl for sft, rl in phases.values()):
        return None
    plt, fig, axes = _figure(13.5 if has_rl else 9.0, 4.6, grid=(1, 2 if has_rl else 1))
    loss_ax = axes[0][0]
    for method, (sft, rl) in phases.items():
        style = {k: styles[method][k] for k in ("color", "linestyle")}
        if sft:
            loss_ax.plot([p["step"] for p in sft], [p["loss"] for p in sft], label=method, linewidth=1.3, **style)
        if rl:
            axes[0][1].plot([p["step"] for p in rl], _moving_average([p["reward"] for p in rl], _REWARD_WINDOW),
                            label=method, linewidth=1.3, **style)
    loss_ax.set_xlabel("optimiser step")
    loss_ax.set_ylabel("training loss (answer tokens, log scale)")
    loss_ax.set_title("supervised fine-tuning" + (" (GRPO runs: their SFT warm-up)" if has_rl else ""), fontsize=10)
    if loss_ax.lines:
        loss_ax.set_yscale("log")
        _readable_log_y(loss_ax)
    loss_ax.grid(alpha=0.3)
    if has_rl:
        axes[0][1].set_xlabel("GRPO step")
        axes[0][1].set_ylabel(f"mean reward ({_REWARD_WINDOW}-step moving average)")
        axes[0][1].set_title("GRPO", fontsize=10)
        axes[0][1].grid(alpha=0.3)
    _legend_outside(axes[0][-1], sources=axes[0])  # SFT-only methods are listed beside the GRPO panel too
    fig.suptitle(f"{task}: training curves (first seed)")
    return _png(plt, fig)
