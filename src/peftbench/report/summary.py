"""Aggregate finished runs into per-(task, method) rows: mean and 95% bootstrap CI over
seeds, cost figures, PSCP, and whether the gap to the task's best method is significant
(paired permutation test over seeds)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from statistics import mean
from typing import Optional, Sequence

from peftbench.analysis.stats import bootstrap_ci, paired_permutation_test

SIGNIFICANCE = 0.05


@dataclass
class MethodSummary:
    task: str
    method: str
    seeds: list[int]
    scores: list[float]  # in [0, 1], one per seed
    mean: float
    low: float
    high: float
    pscp: Optional[float]
    trainable_percent: Optional[float]
    peak_memory_gb: Optional[float]
    tokens_per_s: Optional[float]
    latency_ms: Optional[float]
    retention: Optional[float] = None  # tuned model's general-ability average (runs with a retention suite)
    forgetting_points: Optional[float] = None  # base minus tuned retention average, in points
    base_retention: Optional[float] = None
    path: Optional[dict] = None  # interpolation path of the first analysed seed (analysis/of_run.py)
    spectral: Optional[dict] = None  # spectral summary, mean over analysed seeds
    spectral_profiles: Optional[dict] = None  # mean profiles of the first analysed seed
    trajectory: Optional[list] = None  # checkpoint scores of the first seed that recorded them
    rank: int = 0
    p_vs_best: Optional[float] = None  # None for the best itself or with too few paired seeds
    runs: list[dict] = field(default_factory=list)

    @property
    def not_significant(self) -> bool:
        return self.p_vs_best is not None and self.p_vs_best >= SIGNIFICANCE


def _avg(values) -> Optional[float]:
    values = [v for v in values if v is not None]
    return mean(values) if values else None


def _mean_dicts(dicts: list[dict]) -> Optional[dict]:
    """Key-wise mean of numeric dicts (None values skipped); None for no dicts."""
    if not dicts:
        return None
    return {key: _avg(d.get(key) for d in dicts) for key in dicts[0]}


def _retention(run: dict, part: Optional[str] = None) -> dict:
    """A run's retention record (or its `base` / `tuned` part); {} when it measured none."""
    record = run.get("retention") or {}
    return (record.get(part) or {}) if part else record


def _settings(run: dict) -> dict:
    config = run.get("_config") or {}
    method = {k: v for k, v in (config.get("method") or {}).items() if k not in ("name", "lr")}
    return {**method, "lr": (config.get("train") or {}).get("lr")}


def variant_labels(runs: Sequence[dict]) -> list[str]:
    """The method label, plus the settings that tell runs of one method apart (a rank x lr
    grid becomes 'lora r=4 lr=0.001', ...); seeds are not settings."""
    by_method: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        by_method[run["method"]].append(_settings(run))
    varying = {m: sorted(k for k in set().union(*s) if len({repr(x.get(k)) for x in s}) > 1) for m, s in by_method.items()}
    return [" ".join([run["method"]] + [f"{k}={_settings(run).get(k)}" for k in varying[run["method"]]]) for run in runs]


def summarise(results: Sequence[dict]) -> list[MethodSummary]:
    finished = [r for r in results
                if r.get("status") == "done" and (r.get("eval") or {}).get("score") is not None and r.get("method") != "base"]
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for run, label in zip(finished, variant_labels(finished)):
        groups[(run["task"], label)].append(run)
    rows = []
    for (task, method), runs in groups.items():
        runs = sorted(runs, key=lambda r: r.get("seed") or 0)
        scores = [r["eval"]["score"] for r in runs]
        ci = bootstrap_ci(scores)
        cost = [r.get("cost") or {} for r in runs]
        rows.append(MethodSummary(
            task=task, method=method, seeds=[r.get("seed") for r in runs], scores=scores, mean=ci.mean, low=ci.low,
            high=ci.high, pscp=_avg(r.get("pscp") for r in runs),
            trainable_percent=_avg(c.get("trainable_percent") for c in cost),
            peak_memory_gb=_avg((c.get("peak_memory_bytes") or 0) / 1e9 or None for c in cost),
            tokens_per_s=_avg((r.get("train") or {}).get("tokens_per_s") for r in runs),
            latency_ms=_avg(1000 * (c.get("inference") or {}).get("latency_s_per_sample", 0) or None for c in cost),
            retention=_avg(_retention(r, "tuned").get("average") for r in runs),
            forgetting_points=_avg(_retention(r).get("forgetting_points") for r in runs),
            base_retention=_avg(_retention(r, "base").get("average") for r in runs),
            path=next((r["_path"] for r in runs if r.get("_path")), None),
            spectral=_mean_dicts([r["_spectral"]["summary"] for r in runs if r.get("_spectral")]),
            spectral_profiles=next((r["_spectral"]["mean_profiles"] for r in runs if r.get("_spectral")), None),
            trajectory=next((r["_trajectory"] for r in runs if r.get("_trajectory")), None),
            runs=runs,
        ))
    for task in {row.task for row in rows}:
        ranked = sorted((row for row in rows if row.task == task), key=lambda row: -row.mean)
        best = ranked[0]
        for position, row in enumerate(ranked, start=1):
            row.rank = position
            row.p_vs_best = None if row is best else _paired_p(best, row)
    return sorted(rows, key=lambda row: (row.task, row.rank))


def _paired_p(best: MethodSummary, other: MethodSummary) -> Optional[float]:
    shared = [s for s in best.seeds if s in other.seeds]
    if len(shared) < 2:
        return None  # one seed: no spread, no test
    a = [best.scores[best.seeds.index(s)] for s in shared]
    b = [other.scores[other.seeds.index(s)] for s in shared]
    return paired_permutation_test(a, b)


def mean_ranks(rows: Sequence[MethodSummary]) -> dict[str, float]:
    """Each method's mean rank over the tasks it ran on (1 = best)."""
    by_method: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        by_method[row.method].append(row.rank)
    return dict(sorted(((m, mean(r)) for m, r in by_method.items()), key=lambda item: item[1]))


def base_scores(results: Sequence[dict]) -> dict[str, float]:
    return {r["task"]: r["eval"]["score"] for r in results if r.get("method") == "base" and r.get("eval")}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (higher is better on both)."""
    return [i for i, (x, y) in enumerate(points)
            if not any(ox >= x and oy >= y and (ox, oy) != (x, y) for ox, oy in points)]
