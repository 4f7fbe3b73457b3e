"""Aggregate finished runs into per-(task, method) rows: mean and 95% t interval over
seeds, the change against the base model and whether it is significant (the interval
excludes the base's score), whether the runs learned at all (their training loss fell),
cost figures, PSCP, and whether the gap to the task's best method is significant (paired
t-test over seeds); and a one-line verdict per task."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from statistics import mean
from typing import Optional, Sequence

from peftbench.analysis.stats import Interval, difference_interval, paired_t_test, t_interval
from peftbench.metrics import metric_range

SIGNIFICANCE = 0.05
# a run "did not learn" when its training loss ended above this share of where it began
NOT_LEARNED_LOSS_RATIO = 0.9


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
    base: Optional[float] = None  # the base model's score on the task
    difference: Optional[tuple[float, float]] = None  # 95% interval of (mean - base), seeds and items
    not_learned: int = 0  # runs whose training loss barely fell
    runs: list[dict] = field(default_factory=list)

    @property
    def not_significant(self) -> bool:
        return self.p_vs_best is not None and self.p_vs_best >= SIGNIFICANCE

    @property
    def vs_base(self) -> Optional[float]:
        """Mean change against the base model, in points."""
        return None if self.base is None else 100 * (self.mean - self.base)

    @property
    def against_base(self) -> Optional[str]:
        """'above' / 'below' when the 95% interval of the difference to the base excludes 0
        (item by item and over seeds where the metric is a mean over items; else the seeds'
        interval against the base's score), 'same' when it holds it (indistinguishable),
        None with no base, or one seed and no items (nothing known)."""
        if self.base is None:
            return None
        if self.difference is not None:
            low, high = self.difference
            return "above" if low > 0 else "below" if high < 0 else "same"
        if len(self.scores) < 2:
            return None
        if self.low > self.base:
            return "above"
        if self.high < self.base:
            return "below"
        return "same"


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


def learned(run: dict) -> Optional[bool]:
    """Did the run's training loss fall? None when the run logged no losses."""
    train = run.get("train") or {}
    first, final = train.get("first_loss"), train.get("final_loss")
    if first is None or final is None:
        return None
    return final < NOT_LEARNED_LOSS_RATIO * first


TRANSFER = " -> "
_NOT_TRANSFERRED = ("eval", "transfer", "retention", "pscp", "_spectral", "_path", "_trajectory")


def scored_results(results: Sequence[dict]) -> list[dict]:
    """The results with each transfer evaluation as a result of its own, task 'A -> B'
    (trained on A, scored on B), and the base model's score on B under that name too: the
    leaderboard then compares transfer like any task."""
    out = [r for r in results if TRANSFER not in (r.get("task") or "")]
    bases: dict[str, list[dict]] = defaultdict(list)  # a task's base, under each scoring it was scored by
    for r in out:
        if r.get("method") == "base":
            bases[r["task"]].append(r)
    pairs = set()
    for run in list(out):
        for name, evaluation in (run.get("transfer") or {}).items():
            pseudo = {k: v for k, v in run.items() if k not in _NOT_TRANSFERRED}
            out.append({**pseudo, "task": f"{run['task']}{TRANSFER}{name}", "eval": evaluation})
            pairs.add((run["task"], name))
    out += [{**base, "task": f"{task}{TRANSFER}{name}"} for task, name in sorted(pairs) for base in bases.get(name, [])]
    return out


def summarise(results: Sequence[dict]) -> list[MethodSummary]:
    results = scored_results(results)
    finished = [r for r in results
                if r.get("status") == "done" and (r.get("eval") or {}).get("score") is not None and r.get("method") != "base"]
    used = _scorings_used(results)
    bases = {task: score for task, by in _bases_by_scoring(results).items()
             if (score := _base_for(task, by, used)) is not None}
    base_items = {r["task"]: r["eval"].get("item_scores") for r in results
                  if r.get("method") == "base" and r.get("eval") and r["eval"].get("score") == bases.get(r["task"])
                  and r["eval"].get("scoring") in (used.get(r["task"]), None)}
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for run, label in zip(finished, variant_labels(finished)):
        groups[(run["task"], label)].append(run)
    rows = []
    for (task, method), runs in groups.items():
        runs = sorted(runs, key=lambda r: r.get("seed") or 0)
        scores = [r["eval"]["score"] for r in runs]
        ci = t_interval(scores)
        low_end, high_end = metric_range(runs[0]["eval"].get("primary_metric") or "")
        ci = Interval(ci.mean, max(ci.low, low_end), min(ci.high, high_end), ci.n)  # no 100.6% accuracy
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
            base=bases.get(task), difference=_difference(runs, base_items.get(task)),
            not_learned=sum(learned(r) is False for r in runs),
            runs=runs,
        ))
    for task in {row.task for row in rows}:
        ranked = sorted((row for row in rows if row.task == task), key=lambda row: -row.mean)
        best = ranked[0]
        for position, row in enumerate(ranked, start=1):
            row.rank = position
            row.p_vs_best = None if row is best else _paired_p(best, row)
    return sorted(rows, key=lambda row: (row.task, row.rank))


def _difference(runs: list[dict], base_items: Optional[list]) -> Optional[tuple[float, float]]:
    items = [r["eval"].get("item_scores") for r in runs]
    if not base_items or any(i is None or len(i) != len(base_items) for i in items):
        return None
    interval = difference_interval(items, base_items)
    return interval.low, interval.high


def _paired_p(best: MethodSummary, other: MethodSummary) -> Optional[float]:
    shared = [s for s in best.seeds if s in other.seeds]
    if len(shared) < 2:
        return None  # one seed: no spread, no test
    a = [best.scores[best.seeds.index(s)] for s in shared]
    b = [other.scores[other.seeds.index(s)] for s in shared]
    return paired_t_test(a, b)


def mean_ranks(rows: Sequence[MethodSummary]) -> dict[str, float]:
    """Each method's mean rank over the tasks it ran on (1 = best)."""
    by_method: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        by_method[row.method].append(row.rank)
    return dict(sorted(((m, mean(r)) for m, r in by_method.items()), key=lambda item: item[1]))


def _scorings_used(results: Sequence[dict]) -> dict[str, str]:
    """task -> the scoring its trained runs were scored by."""
    return {r["task"]: r["eval"].get("scoring") for r in results
            if r.get("method") != "base" and r.get("eval") and r["eval"].get("scoring")}


def _bases_by_scoring(results: Sequence[dict]) -> dict[str, dict[Optional[str], float]]:
    found: dict[str, dict[Optional[str], float]] = defaultdict(dict)
    for r in results:
        if r.get("method") == "base" and r.get("eval"):
            found[r["task"]][r["eval"].get("scoring")] = r["eval"]["score"]
    return found


def _base_for(task: str, by_scoring: dict[Optional[str], float], used: dict[str, str]) -> Optional[float]:
    """The base model's score under the scoring the task's runs used (a base scored before
    scorings were recorded stands for any)."""
    if used.get(task) in by_scoring:
        return by_scoring[used.get(task)]
    if None in by_scoring:
        return by_scoring[None]
    return next(iter(by_scoring.values()), None) if task not in used else None


def base_scores(results: Sequence[dict]) -> dict[str, float]:
    expanded = scored_results(results)
    used = _scorings_used(expanded)
    found = {task: _base_for(task, by, used) for task, by in _bases_by_scoring(expanded).items()}
    return {task: score for task, score in found.items() if score is not None}


def other_base_scores(results: Sequence[dict]) -> dict[str, dict[str, float]]:
    """task -> {scoring: the base's score} for the scorings the runs did not use: shown
    beside the base score, since the two can differ by tens of points."""
    expanded = scored_results(results)
    used = _scorings_used(expanded)
    return {task: {s: v for s, v in by.items() if s is not None and s != used.get(task)}
            for task, by in _bases_by_scoring(expanded).items() if any(s not in (None, used.get(task)) for s in by)}


@dataclass
class TransferGap:
    task: str  # trained and scored on
    transfer: str  # also scored on
    method: str
    seeds: list[int]
    source: float  # mean score on `task`
    target: float  # mean score on `transfer`
    gap: float  # mean of source - target, points
    low: float
    high: float


def transfer_gaps(results: Sequence[dict]) -> list[TransferGap]:
    """Per method and transfer pair: the score on the training task, on the transfer task,
    and the gap between them with a 95% t interval over seeds (paired by seed)."""
    finished = [r for r in results if r.get("status") == "done" and r.get("transfer") and r.get("method") != "base"]
    groups: dict[tuple[str, str, str], list[tuple[int, float, float]]] = defaultdict(list)
    for run, label in zip(finished, variant_labels(finished)):
        for name, evaluation in run["transfer"].items():
            groups[(run["task"], name, label)].append((run.get("seed") or 0, run["eval"]["score"], evaluation["score"]))
    gaps = []
    for (task, name, method), found in sorted(groups.items()):
        found.sort()
        interval = t_interval([100 * (a - b) for _, a, b in found])
        gaps.append(TransferGap(task, name, method, [s for s, _, _ in found], mean([a for _, a, _ in found]),
                                mean([b for _, _, b in found]), interval.mean, interval.low, interval.high))
    return sorted(gaps, key=lambda g: (g.task, g.transfer, g.gap))


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (higher is better on both)."""
    return [i for i, (x, y) in enumerate(points)
            if not any(ox >= x and oy >= y and (ox, oy) != (x, y) for ox, oy in points)]


def verdict(rows: Sequence[MethodSummary], task: str) -> str:
    """One line on what the task's table shows: the best method and its gain over the base,
    which methods cannot be told apart from the base, which ran without learning, and which
    are significantly below the best."""
    mine = sorted((r for r in rows if r.task == task), key=lambda r: r.rank)
    if not mine:
        return f"{task}: no finished runs"
    best = mine[0]
    parts = [f"best: {best.method} {100 * best.mean:.1f}"]
    if best.vs_base is not None:
        certain = {"above": ", above the base beyond doubt (95%)", "same": ", within noise of the base",
                   "below": ", below the base"}.get(best.against_base or "", " (one seed: no interval)")
        parts[0] += f", {best.vs_base:+.1f} points over the base{certain}"
    same = [r.method for r in mine if r.against_base == "same"]
    if same:
        parts.append(f"not distinguishable from the base: {', '.join(same)}")
    idle = [r.method for r in mine if r.not_learned == len(r.runs) and r.runs]
    if idle:
        parts.append(f"training loss barely fell: {', '.join(idle)}")
    below = [r.method for r in mine[1:] if r.p_vs_best is not None and r.p_vs_best < SIGNIFICANCE]
    if below:
        parts.append(f"significantly below the best: {', '.join(below)}")
    if best.against_base in ("same", "below") or (best.vs_base is not None and best.vs_base <= 0):
        parts.append("nothing was learned beyond the base model")
    return f"{task}: " + "; ".join(parts)


VERSIONED = ("results_format", "peftbench", "transformers", "peft", "torch")


def mixed_versions(results: Sequence[dict]) -> list[str]:
    """One warning per version that differs between the results compared (a package, the
    results format, a task's spec): scores made before a fix sit beside scores made after."""
    warnings = []
    for key in VERSIONED:
        found = sorted({str((r.get("versions") or {}).get(key, "unrecorded")) for r in results})
        if len(found) > 1:
            warnings.append(f"these results mix {key} {' and '.join(found)}: compare results of one version "
                            "(run the suite again, or report the runs apart)")
    tasks: dict[str, set] = defaultdict(set)
    for r in results:
        for name, fingerprint in ((r.get("versions") or {}).get("tasks") or {}).items():
            tasks[name].add(json.dumps(fingerprint, sort_keys=True))
    warnings += [f"these results score task {name} under {len(specs)} different specs (its template, extractor or "
                 "metrics changed between runs)" for name, specs in sorted(tasks.items()) if len(specs) > 1]
    return warnings
