"""`peftbench report`: terminal tables, Markdown and a self-contained HTML with every
method's row and the plots, from a real (tiny) sweep."""

import re

from peftbench.config import validate_suite_config
from peftbench.sweep import run_suite


def small_sweep(tmp_path):
    suite = validate_suite_config({
        "name": "rep",
        "model": {"name": "tiny-random-llama", "device": "cpu"},
        "methods": [{"name": "lora", "r": r, "alpha": 2 * r, "lr": lr} for r in (2, 4) for lr in (1e-3, 5e-3)] + ["ia3"],
        "tasks": [{"name": "test-parity", "max_train": 48, "max_eval": 16}],
        "seeds": [0, 1],
        "train": {"max_steps": 3, "batch_size": 16, "lr": 5e-3, "logging_steps": 1},
        "eval": {"batch_size": 16, "max_new_tokens": 4},
        "output_dir": str(tmp_path / "runs"),
    })
    return run_suite(suite, show_progress=False)


def test_report_writes_tables_markdown_and_html_with_every_method_and_the_plots(tmp_path):
    from peftbench.cli import main

    results = [r for r in small_sweep(tmp_path) if r["method"] != "base"]
    assert len(results) == 10 and all(r["status"] == "done" for r in results)
    assert main(["report", str(tmp_path / "runs" / "rep"), "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "report.html").read_text()
    rows = re.findall(r"data-method='([^']+)'", page)
    # one row per method setting: the four LoRA grid points are told apart, seeds pooled
    assert sorted(rows) == sorted(["ia3"] + [f"lora alpha={2.0 * r} lr={lr} r={r}" for r in (2, 4) for lr in (0.001, 0.005)])
    methods = set(rows)
    images = re.findall(r"<img alt='([^']+)' src='data:image/png;base64,[A-Za-z0-9+/=]{200,}'", page)
    assert "test-parity: score by method" in images and "cost vs performance" in images
    assert "test-parity: rank x learning rate" in images and "test-parity: training curves" in images
    assert "http" not in page.replace("http-equiv", "")  # self-contained: nothing fetched
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert all(m in markdown for m in methods) and "(plots/scores-test-parity.png)" in markdown
    assert (tmp_path / "report" / "plots" / "cost-vs-score.png").stat().st_size > 1000


def test_summary_marks_differences_that_are_not_significant():
    from peftbench.report.summary import summarise

    def run(method, seed, score):
        return {"task": "t", "method": method, "seed": seed, "status": "done", "eval": {"score": score}}

    clear = [run("a", s, 0.9) for s in range(6)] + [run("b", s, 0.1) for s in range(6)]
    noisy = [run("a", s, 0.5 + 0.01 * s) for s in range(6)] + [run("b", s, 0.5 + 0.01 * (5 - s)) for s in range(6)]
    (best, worse) = summarise(clear)
    assert best.method == "a" and worse.p_vs_best < 0.05 and not worse.not_significant
    assert summarise(noisy)[1].not_significant
    assert best.low <= best.mean <= best.high
