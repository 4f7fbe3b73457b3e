"""The leaderboard says what it shows: each method against the base model with a mark of
significance, runs that did not learn, and a one-line verdict per task, checked on a
hand-worked set of scores."""

import pytest

from peftbench.report.build import terminal_tables
from peftbench.report.summary import summarise, verdict

BASE = [1.0, 0.0] * 50  # 100 items, the base gets every other one: 50%


def run(method, seed, items, first_loss=5.0, final_loss=1.0):
    return {"run_id": f"{method}-{seed}", "task": "t", "method": method, "seed": seed, "status": "done",
            "eval": {"score": sum(items) / len(items), "item_scores": items, "primary_metric": "accuracy"},
            "train": {"first_loss": first_loss, "final_loss": final_loss}}


COLLAPSED = [1.0] * 55 + [0.0] * 45  # one label for everything: 55%, a 5-point edge by luck


def results():
    return [
        {"run_id": "base-t", "task": "t", "method": "base", "status": "done",
         "eval": {"score": 0.5, "item_scores": BASE, "primary_metric": "accuracy"}},
        *[run("strong", seed, [1.0] * 100) for seed in range(3)],
        *[run("collapsed", seed, COLLAPSED, first_loss=5.0, final_loss=4.9) for seed in range(3)],
        # right on the first 70, 75, 80 of 100 items
        *[run("middling", seed, [1.0] * (70 + 5 * seed) + [0.0] * (30 - 5 * seed)) for seed in range(3)],
    ]


def test_each_method_is_marked_against_the_base_on_seeds_and_items():
    rows = {r.method: r for r in summarise(results())}
    strong, collapsed, middling = rows["strong"], rows["collapsed"], rows["middling"]
    # strong: +50 points on every seed; the items alone leave doubt: per-item differences are
    # 0 or 1 (50 each), sd 0.50252, half-width 1.95996 * 0.50252 / sqrt(100) = 0.09849
    assert strong.vs_base == pytest.approx(50.0)
    assert strong.difference == pytest.approx((0.5 - 0.09849, 0.5 + 0.09849), abs=1e-4)
    assert strong.against_base == "above"
    # collapsed: the three seeds agree exactly (a zero-width seed interval above the base), yet
    # the items cannot tell its 55% from the base's 50%: per-item differences 27 x +1, 22 x -1,
    # 51 x 0: sd 0.70173, half-width 0.13754, interval (-0.0875, 0.1875)
    assert (collapsed.low, collapsed.high) == pytest.approx((0.55, 0.55))
    assert collapsed.vs_base == pytest.approx(5.0) and collapsed.against_base == "same"
    assert collapsed.difference == pytest.approx((0.05 - 0.13754, 0.05 + 0.13754), abs=1e-4)
    assert collapsed.not_learned == 3 and strong.not_learned == 0
    assert middling.against_base == "above" and middling.rank == 2


def test_the_verdict_names_the_best_its_gain_and_what_cannot_be_told_from_the_base():
    rows = summarise(results())
    line = verdict(rows, "t")
    assert line.startswith("t: best: strong 100.0, +50.0 points over the base, above the base beyond doubt (95%)")
    assert "not distinguishable from the base: collapsed" in line
    assert "training loss barely fell: collapsed" in line
    # the paired t-test over seeds: strong beats middling by 30, 25, 20 points (t = 8.66, df 2,
    # p = 0.013) and collapsed by 45 on each seed (p = 0)
    assert "significantly below the best: middling, collapsed" in line
    assert "nothing was learned" not in line


def test_a_task_where_nothing_learned_says_so():
    flat = [r for r in results() if r["method"] in ("base", "collapsed")]
    line = verdict(summarise(flat), "t")
    assert "within noise of the base" in line and "nothing was learned beyond the base model" in line


def test_the_terminal_table_shows_the_marks_and_the_verdict():
    from rich.console import Console

    rows = summarise(results())
    (table,) = terminal_tables(rows, {"t": 0.5})
    console = Console(width=250, record=True)
    console.print(table)
    text = console.export_text()
    assert "t (accuracy, base model 50.0)" in text
    assert "+50.0 ↑" in text and "+25.0 ↑" in text and "+5.0 ≈" in text and "0/3" in text and "3/3" in text
    assert "not distinguishable from the base: collapsed" in text


def test_the_base_is_compared_under_the_runs_scoring_and_shown_under_the_other():
    from peftbench.report.build import _title
    from peftbench.report.summary import base_scores, other_base_scores

    scored = [dict(r, eval={**r["eval"], "scoring": "loglik"}) for r in results()]
    by_generation = {"run_id": "base-t-gen", "task": "t", "method": "base", "status": "done",
                     "eval": {"score": 0.02, "item_scores": [0.0] * 98 + [1.0] * 2, "scoring": "generate",
                              "primary_metric": "accuracy"}}
    for order in (scored + [by_generation], [by_generation] + scored):  # whichever comes first
        assert base_scores(order) == {"t": 0.5}
        assert other_base_scores(order) == {"t": {"generate": 0.02}}
        rows = summarise(order)
        assert {r.method: r.vs_base for r in rows}["strong"] == pytest.approx(50.0)
        assert _title(rows, "t", base_scores(order), other_base_scores(order)) == \
            "t (accuracy by log-likelihood, base model 50.0; by generation 2.0)"
