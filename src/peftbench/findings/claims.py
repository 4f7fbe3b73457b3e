"""The three studies' claims, each a rule that turns finished runs into a verdict.

Every rule reads only results (metrics.json of runs, their analyses): nothing here knows
what the answer should be. A claim about methods that learned nothing is never judged:
when the best method of an experiment gains less than `MIN_GAIN_POINTS` over the base
model on its target, the verdict is "inconclusive: nothing learned". Numbers carry 95%
intervals over seeds (t intervals); tests are named beside them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from statistics import mean, pstdev
from typing import Callable, Optional, Sequence

import numpy as np

from peftbench.analysis.stats import paired_t_test, t_interval
from peftbench.registry import Registry

MIN_GAIN_POINTS = 20.0  # the best method must gain this much over the base, or nothing is judged
# claim 9 compares forgetting "at a comparable target gain": GRPO's mean target score within
# this many points of SFT's (a GRPO run that learned less has less to forget, which says nothing)
COMPARABLE_TARGET_POINTS = 10.0
SOFT_PROMPTS = ("prompt", "ptuning", "prefix")
HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"


@dataclass
class Verdict:
    claim: int
    verdict: str  # holds | does not hold | inconclusive
    reason: str  # one line: why, in numbers
    numbers: dict = field(default_factory=dict)  # label -> figure (with its interval)
    test: str = ""  # the statistic the verdict rests on


@dataclass(frozen=True)
class Claim:
    number: int
    study: str
    text: str
    paper: str  # the paper's own figure or wording
    experiments: tuple[str, ...]  # the findings experiments it reads (configs/findings/<name>.yaml)
    judge: Callable[[dict[str, list[dict]]], Verdict]


CLAIMS: Registry[Claim] = Registry("claim")


def claim(number: int, study: str, text: str, paper: str, experiments: tuple[str, ...]):
    def register(judge):
        def numbered(experiments_run: dict[str, list[dict]]) -> Verdict:
            verdict = judge(experiments_run)
            verdict.claim = number  # shared verdicts (nothing learned) are made without a number
            return verdict

        CLAIMS.register(str(number), Claim(number, study, text, paper, experiments, numbered))
        return judge

    return register


# ---------------------------------------------------------------- reading results


def claim_numbers() -> list[int]:
    """Every claim's number, in order (the registry holds them as names, where "10" < "2")."""
    return sorted(int(name) for name in CLAIMS.names())


def trained(results: Sequence[dict], task: Optional[str] = None, mode: str = "sft") -> list[dict]:
    """Finished runs (not the base), on `task` when given, trained in `mode`."""
    return [r for r in results if r.get("status") == "done" and r.get("method") != "base"
            and (task is None or r.get("task") == task) and (r.get("train") or {}).get("mode", "sft") == mode]


def base_score(results: Sequence[dict], task: str) -> Optional[float]:
    scored = [r for r in results if r.get("method") == "base" and r.get("task") == task and r.get("eval")]
    runs = trained(results, task)
    scoring = (runs[0]["eval"].get("scoring") if runs else None)
    matching = [r for r in scored if r["eval"].get("scoring") in (scoring, None)] or scored
    return matching[0]["eval"]["score"] if matching else None


def by_method(runs: Sequence[dict], value: Callable[[dict], Optional[float]],
              label: Optional[Callable[[dict], str]] = None) -> dict[str, dict[int, float]]:
    """method -> {seed: value} (values in points where `value` says so); `label` groups the runs
    (default: the method's family name)."""
    label = label or (lambda run: base_label(run["method"]))
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for run in runs:
        v = value(run)
        if v is not None:
            out[label(run)][run.get("seed") or 0] = v
    return dict(out)


def grid_cell(run: dict) -> str:
    """A run's cell of a rank x learning-rate grid: one method family, many settings."""
    config = run.get("_config") or {}
    return f"{run['method']} r={(config.get('method') or {}).get('r')} lr={(config.get('train') or {}).get('lr'):g}"


def base_label(method: str) -> str:
    """A method's family name as the claims speak of it (lora-r8 -> lora)."""
    return method.split("-r")[0] if method.startswith("lora-r") else method


def score_points(run: dict) -> float:
    return 100 * run["eval"]["score"]


def interval(values: Sequence[float]) -> str:
    ci = t_interval(list(values))
    return f"{ci.mean:.1f} [{ci.low:.1f}, {ci.high:.1f}]" if ci.n > 1 else f"{ci.mean:.1f}"


def nothing_learned(results: Sequence[dict], task: str,
                    label: Optional[Callable[[dict], str]] = None) -> Optional[Verdict]:
    """The inconclusive verdict when the best method (or grid cell, by `label`) gains <
    MIN_GAIN_POINTS over the base."""
    base = base_score(results, task)
    scores = by_method(trained(results, task), score_points, label)
    if not scores or base is None:
        return Verdict(0, INCONCLUSIVE, f"no finished runs and base score on {task}")
    best, values = max(scores.items(), key=lambda item: mean(item[1].values()))
    gain = mean(values.values()) - 100 * base
    if gain < MIN_GAIN_POINTS:
        return Verdict(0, INCONCLUSIVE, f"nothing learned: the best method on {task} ({best}) gains {gain:+.1f} "
                       f"points over the base, under the {MIN_GAIN_POINTS:.0f} a verdict needs")
    return None


def _paired(a: dict[int, float], b: dict[int, float]) -> tuple[list[float], list[float]]:
    seeds = sorted(set(a) & set(b))
    return [a[s] for s in seeds], [b[s] for s in seeds]


def _rank_correlation(x: Sequence[float], y: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)



# ---------------------------------------------------------------- PEFT-Bench

TARGET = "micro-sentiment"  # the findings' target task on the micro world (configs/findings/methods.yaml)


def _target(experiments: dict[str, list[dict]], name: str = "methods") -> tuple[list[dict], str]:
    results = experiments.get(name, [])
    tasks = sorted({r["task"] for r in trained(results)})
    return results, (tasks[0] if tasks else TARGET)


@claim(1, "PEFT-Bench", "LoRA has the best average raw score of the seven methods.",
       "LoRA 80.1 average over 27 datasets, the highest", ("methods",))
def lora_best_score(experiments):
    results, task = _target(experiments)
    if (blocked := nothing_learned(results, task)) is not None:
        return blocked
    scores = by_method(trained(results, task), score_points)
    if "lora" not in scores:
        return Verdict(1, INCONCLUSIVE, "no LoRA runs")
    ranked = sorted(scores, key=lambda m: -mean(scores[m].values()))
    best = ranked[0]
    numbers = {m: interval(scores[m].values()) for m in ranked}
    if best == "lora":
        return Verdict(1, HOLDS, f"LoRA ranks first of {len(ranked)} methods", numbers, "mean score over seeds")
    p = paired_t_test(*_paired(scores[best], scores["lora"]))
    test = f"paired t-test over seeds, {best} vs LoRA: p = {p:.3f}"
    if p < 0.05:
        return Verdict(1, FAILS, f"{best} scores above LoRA beyond noise (LoRA ranks {ranked.index('lora') + 1})",
                       numbers, test)
    return Verdict(1, INCONCLUSIVE, f"{best} ranks first, LoRA within noise of it", numbers, test)


@claim(2, "PEFT-Bench", "LN tuning has the best PSCP; ranking by PSCP differs from ranking by score, and "
       "moves with the betas.", "PSCP (beta 1): LN tuning 60.19, LoRA 60.08, IA3 55.62", ("methods",))
def ln_best_pscp(experiments):
    from peftbench.cost.pscp import PscpConstants
    from peftbench.report.pscp_table import method_costs

    results, task = _target(experiments)
    if (blocked := nothing_learned(results, task)) is not None:
        return blocked
    costs = [c for c in method_costs(trained(results, task)) if c.category == "all"]
    if not costs:
        return Verdict(2, INCONCLUSIVE, "no runs with measured costs")

    def order(beta):
        constants = PscpConstants(b_params=beta, b_flops=beta, b_memory=beta)
        return [c.method for c in sorted(costs, key=lambda c: -c.pscp(constants))]

    by_score = [c.method for c in sorted(costs, key=lambda c: -c.score)]
    beta1, beta2 = order(1.0), order(2.0)
    numbers = {"by PSCP, beta 1": ", ".join(beta1), "by PSCP, beta 2": ", ".join(beta2), "by score": ", ".join(by_score)}
    parts = [beta1[0] == "lntuning", beta1 != by_score, beta1 != beta2]
    reason = (f"best PSCP: {beta1[0]}; PSCP order {'differs from' if parts[1] else 'equals'} the score order; "
              f"{'moves' if parts[2] else 'does not move'} from beta 1 to beta 2")
    return Verdict(2, HOLDS if all(parts) else FAILS, reason, numbers, "PSCP of each method's averages (PEFT-Bench's way)")


@claim(3, "PEFT-Bench", "Soft-prompt methods (prompt, P-tuning, prefix) are the least stable across seeds.",
       "prompt-based methods show the largest standard deviations over 5 seeds", ("methods",))
def soft_prompts_unstable(experiments):
    results, task = _target(experiments)
    if (blocked := nothing_learned(results, task)) is not None:
        return blocked
    base = 100 * base_score(results, task)
    scores = by_method(trained(results, task), score_points)
    learned = {m: v for m, v in scores.items() if mean(v.values()) - base >= MIN_GAIN_POINTS / 2}
    soft = [m for m in learned if m in SOFT_PROMPTS]
    if not soft:
        idle = ", ".join(m for m in scores if m in SOFT_PROMPTS)
        return Verdict(3, INCONCLUSIVE, f"no soft-prompt method learned ({idle} within {MIN_GAIN_POINTS / 2:.0f} points "
                       "of the base): the stability of a method that learned nothing is not its stability",
                       {m: interval(v.values()) for m, v in scores.items()})
    spread = {m: pstdev(v.values()) for m, v in learned.items()}
    ranked = sorted(spread, key=lambda m: -spread[m])
    numbers = {m: f"sd {spread[m]:.1f} points" for m in ranked}
    others = [m for m in ranked if m not in SOFT_PROMPTS]
    holds = all(spread[s] > max((spread[o] for o in others), default=0) for s in soft)
    return Verdict(3, HOLDS if holds else FAILS, f"most spread: {ranked[0]}; soft prompts that learned: "
                   f"{', '.join(soft)}", numbers, "standard deviation of the score over seeds, methods that learned")


# ---------------------------------------------------------------- the systematic comparison


@claim(4, "systematic comparison", "No single method wins every domain (sentiment, math, code).",
       "LoRA best on sentiment, different winners on math and code", ("methods", "math"))
def no_single_winner(experiments):
    winners, blocked = {}, []
    for name in ("methods", "math"):
        results, task = _target(experiments, name)
        if not trained(results):
            continue
        if nothing_learned(results, task) is not None:
            blocked.append(task)
            continue
        scores = by_method(trained(results, task), score_points)
        winners[task] = max(scores, key=lambda m: mean(scores[m].values()))
    numbers = {task: winner for task, winner in winners.items()}
    if len(winners) < 2:
        return Verdict(4, INCONCLUSIVE, f"fewer than two domains learned (not learned: {', '.join(blocked) or '-'}; "
                       "micro-code is not learned at any CPU budget tried)", numbers)
    holds = len(set(winners.values())) > 1
    named = ", ".join(f"{task}: {winner}" for task, winner in winners.items())
    return Verdict(4, HOLDS if holds else FAILS, f"winners by domain: {named}", numbers, "best mean score per domain")


@claim(5, "systematic comparison", "Soft prompts transfer worse: the in-distribution minus transfer gap is "
       "larger for prompt and prefix tuning than for LoRA.", "IMDB: LoRA 79.8%, prompt 70.9%, prefix 50.0%",
       ("methods",))
def soft_prompts_transfer_worse(experiments):
    results, task = _target(experiments)
    if (blocked := nothing_learned(results, task)) is not None:
        return blocked
    base = 100 * base_score(results, task)
    runs = [r for r in trained(results, task) if r.get("transfer")]
    if not runs:
        return Verdict(5, INCONCLUSIVE, "no transfer scores")
    target = next(iter(runs[0]["transfer"]))
    gaps = by_method(runs, lambda r: 100 * (r["eval"]["score"] - r["transfer"][target]["score"]))
    scores = by_method(runs, score_points)
    numbers = {m: f"gap {interval(v.values())} points" for m, v in gaps.items()}
    soft = [m for m in ("prompt", "prefix") if m in gaps and mean(scores[m].values()) - base >= MIN_GAIN_POINTS / 2]
    if "lora" not in gaps or not soft:
        return Verdict(5, INCONCLUSIVE, "prompt and prefix tuning did not learn the source task: a method at the base "
                       "score has no gain to lose in transfer", numbers)
    worse = [m for m in soft if paired_t_test(*_paired(gaps[m], gaps["lora"])) < 0.05
             and mean(gaps[m].values()) > mean(gaps["lora"].values())]
    return Verdict(5, HOLDS if len(worse) == len(soft) else FAILS,
                   f"gap larger than LoRA's beyond noise: {', '.join(worse) or 'none'} (of {', '.join(soft)})",
                   numbers, "paired t-test over seeds on the gap")


@claim(6, "systematic comparison", "LoRA's gains with rank plateau, and the learning rate matters more than "
       "the rank.", "r 4 to 64 within a few points; lr 1e-4 vs 1e-3 far apart", ("rank-lr",))
def rank_plateau(experiments):
    results, task = _target(experiments, "rank-lr")
    if (blocked := nothing_learned(results, task, label=grid_cell)) is not None:  # the best cell, not a mix
        return blocked
    cells: dict[tuple[int, float], list[float]] = defaultdict(list)
    for run in trained(results, task):
        config = run.get("_config") or {}
        cells[((config.get("method") or {}).get("r"), (config.get("train") or {}).get("lr"))].append(score_points(run))
    ranks, lrs = sorted({r for r, _ in cells}), sorted({lr for _, lr in cells})
    grid = np.array([[mean(cells[(r, lr)]) if cells.get((r, lr)) else np.nan for lr in lrs] for r in ranks])
    rank_effect = float(np.nanmax(np.nanmean(grid, axis=1)) - np.nanmin(np.nanmean(grid, axis=1)))
    lr_effect = float(np.nanmax(np.nanmean(grid, axis=0)) - np.nanmin(np.nanmean(grid, axis=0)))
    best_lr = lrs[int(np.nanargmax(np.nanmean(grid, axis=0)))]
    at_best = {r: grid[i, lrs.index(best_lr)] for i, r in enumerate(ranks)}
    plateau = abs(at_best[ranks[-1]] - at_best[ranks[len(ranks) // 2]]) < 5.0
    numbers = {f"r={r}": ", ".join(f"lr {lr:g}: {grid[i, j]:.1f}" for j, lr in enumerate(lrs)) for i, r in enumerate(ranks)}
    numbers["spread over ranks / lrs"] = f"{rank_effect:.1f} / {lr_effect:.1f} points"
    holds = plateau and lr_effect > rank_effect
    return Verdict(6, HOLDS if holds else FAILS, f"spread of the mean score over learning rates {lr_effect:.1f} vs "
                   f"over ranks {rank_effect:.1f} points; from the middle to the largest rank at the best lr: "
                   f"{at_best[ranks[len(ranks) // 2]]:.1f} -> {at_best[ranks[-1]]:.1f}", numbers,
                   "range of row and column means of the rank x lr grid; plateau: within 5 points")


# ---------------------------------------------------------------- PEFT-Arena


def _plane(experiments) -> tuple[list[dict], str, dict, dict]:
    results, task = _target(experiments)
    runs = [r for r in trained(results, task) if r.get("retention")]
    gains = by_method(runs, lambda r: 100 * r["eval"]["score"])
    forgetting = by_method(runs, lambda r: r["retention"]["forgetting_points"])
    return results, task, gains, forgetting


@claim(7, "PEFT-Arena", "Full fine-tuning gains the most on the target and forgets the most general ability.",
       "full fine-tuning: largest target gain and largest drop in general score", ("methods",))
def full_gains_and_forgets_most(experiments):
    results, task, scores, forgetting = _plane(experiments)
    if (blocked := nothing_learned(results, task)) is not None:
        return blocked
    if "full" not in scores or not forgetting:
        return Verdict(7, INCONCLUSIVE, "no full fine-tuning runs with retention scores")
    top_score = max(scores, key=lambda m: mean(scores[m].values()))
    top_forget = max(forgetting, key=lambda m: mean(forgetting[m].values()))
    numbers = {m: f"target {interval(scores[m].values())}, forgetting {interval(forgetting[m].values())}"
               for m in scores}
    gains_most = top_score == "full" or paired_t_test(*_paired(scores[top_score], scores["full"])) >= 0.05
    forgets_most = top_forget == "full" or paired_t_test(*_paired(forgetting[top_forget], forgetting["full"])) >= 0.05
    return Verdict(7, HOLDS if gains_most and forgets_most else FAILS,
                   f"highest target: {top_score}; most forgetting: {top_forget} (ties within noise count for full)",
                   numbers, "paired t-test over seeds against full fine-tuning")


@claim(8, "PEFT-Arena", "OFT lies on (or nearest to) the Pareto front of target gain vs retention.",
       "OFT on the front of target gain vs general-ability retention", ("methods",))
def oft_on_front(experiments):
    from peftbench.report.summary import pareto_front

    results, task, scores, forgetting = _plane(experiments)
    if (blocked := nothing_learned(results, task)) is not None:
        return blocked
    methods = [m for m in scores if m in forgetting]
    if "oft" not in methods:
        return Verdict(8, INCONCLUSIVE, "no OFT runs with retention scores")
    points = [(mean(scores[m].values()), -mean(forgetting[m].values())) for m in methods]
    front = [methods[i] for i in pareto_front(points)]
    numbers = {m: f"target {p[0]:.1f}, retention change {p[1]:+.1f}" for m, p in zip(methods, points)}
    numbers["Pareto front"] = ", ".join(front)
    return Verdict(8, HOLDS if "oft" in front else FAILS, f"on the front: {', '.join(front)}", numbers,
                   "Pareto front of (mean target score, minus mean forgetting)")


@claim(9, "PEFT-Arena", "GRPO forgets less than SFT at a comparable target gain.",
       "RL with verifiable rewards forgets less than SFT", ("grpo",))
def grpo_forgets_less(experiments):
    results = experiments.get("grpo", [])
    forgetting = {mode: by_method([r for r in trained(results, mode=mode) if r.get("retention")],
                                  lambda r: r["retention"]["forgetting_points"]) for mode in ("sft", "grpo")}
    scores = {mode: by_method(trained(results, mode=mode), score_points) for mode in ("sft", "grpo")}
    pairs = {m.removesuffix("-grpo"): m for m in forgetting["grpo"]}
    shared = sorted(m for m in pairs if m in forgetting["sft"])
    if not shared:
        return Verdict(9, INCONCLUSIVE, "no method with both SFT and GRPO runs scored for retention")
    task = trained(results)[0]["task"]
    if (blocked := nothing_learned(results, task)) is not None:
        return blocked
    numbers = {m: f"SFT: target {interval(scores['sft'][m].values())}, forgets {interval(forgetting['sft'][m].values())}; "
               f"GRPO: target {interval(scores['grpo'][pairs[m]].values())}, "
               f"forgets {interval(forgetting['grpo'][pairs[m]].values())}" for m in shared}
    test = (f"mean forgetting over seeds, same method and task, where GRPO's mean target score is within "
            f"{COMPARABLE_TARGET_POINTS:.0f} points of SFT's")
    gaps = {m: mean(scores["grpo"].get(pairs[m], {}).values() or [float("nan")]) - mean(scores["sft"][m].values())
            for m in shared if m in scores["sft"]}
    comparable = [m for m, gap in gaps.items() if abs(gap) <= COMPARABLE_TARGET_POINTS]
    if not comparable:
        far = ", ".join(f"{m} {gap:+.1f}" for m, gap in gaps.items())
        return Verdict(9, INCONCLUSIVE, f"target gains not comparable: GRPO minus SFT target score {far} points",
                       numbers, test)
    # per method: GRPO's forgetting minus SFT's, paired by seed; a verdict only beyond noise
    p = {m: paired_t_test(*_paired(forgetting["grpo"][pairs[m]], forgetting["sft"][m])) for m in comparable}
    less = [m for m in comparable if p[m] < 0.05 and mean(forgetting["grpo"][pairs[m]].values())
            < mean(forgetting["sft"][m].values())]
    more = [m for m in comparable if p[m] < 0.05 and m not in less]
    test += "; paired t-test over seeds: " + ", ".join(f"{m} p = {p[m]:.3f}" for m in comparable)
    if more or len(less) == len(comparable):
        return Verdict(9, FAILS if more else HOLDS, f"GRPO forgets less beyond noise for {len(less)} of "
                       f"{len(comparable)} methods at a comparable target score"
                       + (f", more for {', '.join(more)}" if more else ""), numbers, test)
    return Verdict(9, INCONCLUSIVE, "GRPO and SFT forget the same within noise at a comparable target score",
                   numbers, test)


@claim(10, "PEFT-Arena", "SFT overshoots: a point before alpha = 1 on the path from base to tuned weights "
       "gives a better trade-off than the final model.", "best trade-off before the end of the path", ("methods",))
def sft_overshoots(experiments):
    results, task = _target(experiments)
    if (blocked := nothing_learned(results, task)) is not None:
        return blocked
    paths = [(base_label(r["method"]), r["_path"]["best"]) for r in trained(results, task) if r.get("_path")]
    judged = [(m, b) for m, b in paths if b.get("overshoot") is not None]
    if not judged:
        return Verdict(10, INCONCLUSIVE, "no interpolation paths with retention scores")
    over = [m for m, b in judged if b["overshoot"]]
    numbers = {f"{m} (seed path)": f"best alpha {b.get('best_alpha')}, overshoot {b['overshoot']}" for m, b in judged}
    return Verdict(10, HOLDS if len(over) * 2 > len(judged) else FAILS,
                   f"{len(over)} of {len(judged)} paths peak before alpha 1", numbers,
                   "balanced trade-off of target gain and retention along each path")


@claim(11, "PEFT-Arena", "Smoother spectral profiles go with better retention (a rank correlation across runs).",
       "lower fluctuation of the retention/adaptation profile, less forgetting", ("methods",))
def smooth_spectra_retain(experiments):
    results, task = _target(experiments)
    if (blocked := nothing_learned(results, task)) is not None:
        return blocked
    pairs = [(r["_spectral"]["summary"]["adaptation_fluctuation"], r["retention"]["forgetting_points"])
             for r in trained(results, task) if r.get("_spectral") and r.get("retention")]
    pairs = [(f, g) for f, g in pairs if f is not None and g is not None]
    if len(pairs) < 6:
        return Verdict(11, INCONCLUSIVE, f"{len(pairs)} runs with a spectral profile and retention; 6 needed")
    rho = _rank_correlation([f for f, _ in pairs], [g for _, g in pairs])
    rng = np.random.default_rng(0)
    boot = [(_rank_correlation(*zip(*[pairs[i] for i in idx]))) for idx in rng.integers(0, len(pairs), (1000, len(pairs)))]
    low, high = np.nanpercentile(boot, [2.5, 97.5])
    numbers = {"Spearman rho (fluctuation, forgetting)": f"{rho:+.2f} [{low:+.2f}, {high:+.2f}]", "runs": str(len(pairs))}
    verdict = HOLDS if low > 0 else FAILS if high < 0 else INCONCLUSIVE
    return Verdict(11, verdict, f"rho {rho:+.2f}: {'more fluctuation, more forgetting' if rho > 0 else 'no such link'}"
                   + ("" if verdict != INCONCLUSIVE else " (the interval holds 0)"), numbers,
                   "Spearman correlation across runs, bootstrap 95% interval over runs")


@claim(12, "peftbench", "The micro world is a faithful proxy: methods rank on micro-sentiment as on a real model "
       "on SST-2.", "not checked by any study", ("methods", "real"))
def micro_is_a_proxy(experiments):
    micro, micro_task = _target(experiments)
    real = experiments.get("real", [])
    if not trained(real):
        return Verdict(12, INCONCLUSIVE, "no real-model runs: run `peftbench run real-sentiment` first (30 minutes on "
                       "2 cores), then `peftbench findings --claims 12`")
    real_task = sorted({r["task"] for r in trained(real)})[0]
    for results, task in ((micro, micro_task), (real, real_task)):
        if (blocked := nothing_learned(results, task)) is not None:
            return blocked
    a, b = by_method(trained(micro, micro_task), score_points), by_method(trained(real, real_task), score_points)
    shared = sorted(set(a) & set(b))
    if len(shared) < 4:
        return Verdict(12, INCONCLUSIVE, f"{len(shared)} methods in both suites; 4 needed")
    rho = _rank_correlation([mean(a[m].values()) for m in shared], [mean(b[m].values()) for m in shared])
    rng = np.random.default_rng(0)

    def resampled(scores):  # each method's mean over a bootstrap draw of its seeds
        return [mean(rng.choice(list(scores[m].values()), len(scores[m]))) for m in shared]

    boot = [_rank_correlation(resampled(a), resampled(b)) for _ in range(1000)]
    low, high = np.nanpercentile(boot, [2.5, 97.5])
    numbers = {m: f"micro {mean(a[m].values()):.1f}, real {mean(b[m].values()):.1f}" for m in shared}
    numbers["Spearman rho"] = f"{rho:+.2f} [{low:+.2f}, {high:+.2f}]"
    verdict = HOLDS if low > 0 else FAILS if rho <= 0 else INCONCLUSIVE
    return Verdict(12, verdict, f"rank correlation {rho:+.2f} over {len(shared)} methods", numbers,
                   "Spearman's rho of mean scores, bootstrap over seeds")
