"""`peftbench report`: terminal tables, Markdown and a self-contained HTML with every
method's row and the plots, from a real (tiny) sweep."""

import re
import shutil
import subprocess

import pytest

from peftbench.validate import validate_suite_config
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


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    """A finished tiny sweep and its report, built once for the tests that read it."""
    from peftbench.cli import main

    tmp_path = tmp_path_factory.mktemp("report")
    results = [r for r in small_sweep(tmp_path) if r["method"] != "base"]
    assert len(results) == 10 and all(r["status"] == "done" for r in results)
    assert main(["report", str(tmp_path / "runs" / "rep"), "--out", str(tmp_path / "report")]) == 0
    return tmp_path / "report"


def test_report_writes_tables_markdown_and_html_with_every_method_and_the_plots(report_dir):
    page = (report_dir / "report.html").read_text()
    rows = re.findall(r"data-method='([^']+)'", page)
    # one row per method setting: the four LoRA grid points are told apart, seeds pooled
    assert sorted(rows) == sorted(["ia3"] + [f"lora alpha={2.0 * r} lr={lr} r={r}" for r in (2, 4) for lr in (0.001, 0.005)])
    methods = set(rows)
    images = re.findall(r"<img alt='([^']+)' src='data:image/png;base64,[A-Za-z0-9+/=]{200,}'", page)
    assert "test-parity: score by method" in images and "cost vs performance" in images
    assert "test-parity: rank x learning rate" in images and "test-parity: training curves" in images
    assert "http" not in page.replace("http-equiv", "")  # self-contained: nothing fetched
    markdown = (report_dir / "report.md").read_text()
    assert all(m in markdown for m in methods) and "(plots/scores-test-parity.png)" in markdown
    assert (report_dir / "plots" / "cost-vs-score.png").stat().st_size > 1000


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium here (Debian: apt-get install chromium)")
def test_report_html_renders_in_headless_chromium_with_its_plots_drawn(report_dir, tmp_path):
    """The page opens offline in a real browser, and the embedded PNGs decode: the
    screenshot holds strongly coloured pixels, which only the plots carry (the tables
    are grey on white)."""
    import numpy as np
    from PIL import Image

    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=1280,6000",
             f"--screenshot={shot}"]
    browser = subprocess.run([CHROMIUM, *flags, (report_dir / "report.html").as_uri()], capture_output=True, text=True,
                             timeout=120)
    if browser.returncode != 0 or not shot.is_file():  # the browser could not start here: not the page's fault
        pytest.skip(f"Chromium did not start (exit {browser.returncode}): {browser.stderr[-300:]}")
    rgb = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    coloured = int(((rgb.max(axis=2) - rgb.min(axis=2)) > 80).sum())
    assert coloured > 5000, f"only {coloured} coloured pixels: the plots did not render"


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


def test_training_curves_split_a_grpo_log_into_its_sft_warmup_and_its_reward_steps(tmp_path):
    import json

    from peftbench.report.plots import _training_phases

    log = [{"step": 10, "loss": 9.9}, {"step": 20, "loss": 5.6}] + \
          [{"step": s, "loss": 0.004, "reward": 0.1 * s, "kl": 0.1} for s in (1, 2, 3)]
    (tmp_path / "train_log.jsonl").write_text("\n".join(json.dumps(p) for p in log) + "\n")
    sft, rl = _training_phases(str(tmp_path))
    # the GRPO steps restart at 1 and their loss is no cross-entropy: kept off the loss axis
    assert [p["step"] for p in sft] == [10, 20] and [p["loss"] for p in sft] == [9.9, 5.6]
    assert [p["reward"] for p in rl] == [0.1, 0.2, 0.30000000000000004]
    assert _training_phases(str(tmp_path / "missing")) == ([], [])


def test_moving_average_of_rewards_by_hand():
    from peftbench.report.plots import _moving_average

    assert _moving_average([1, 2, 3, 4, 5, 6], 3) == [1.0, 1.5, 2.0, 3.0, 4.0, 5.0]
    assert _moving_average([0.5], 5) == [0.5]


def test_a_method_keeps_its_colour_and_marker_whatever_else_is_in_the_figure():
    from peftbench.report.plots import _style_of

    many = _style_of(f"m{i:02d}" for i in range(25))
    # 25 methods: no two share colour + marker, so every point can be told apart by the legend
    assert len({(s["color"], s["marker"]) for s in many.values()}) == 25
    assert _style_of(["lora", "ia3", "full"])["lora"] == _style_of(["full", "ia3", "lora"])["lora"]


def test_report_counts_sandbox_verdicts_with_rejected_values_apart(tmp_path):
    from peftbench.report.build import grading_rows, write_markdown

    def run(seed, counts):
        return {"task": "micro-code", "method": "lora", "seed": seed,
                "eval": {"grading": {"pass@1": {"counts": counts}}}}

    results = [run(0, {"passed": 3, "failed": 1, "error": 0, "timeout": 0, "rejected": 2}),
               run(1, {"passed": 1, "failed": 2, "error": 1, "timeout": 1, "rejected": 0}),
               {"task": "micro-math", "method": "lora", "eval": {"scores": {"exact_match": 0.5}}}]
    assert grading_rows(results) == [["micro-code", "lora", "pass@1", "4", "3", "1", "1", "2"]]
    markdown = write_markdown(tmp_path, [], {}, {}, [], grading_rows(results)).read_text()
    assert "## Code grading" in markdown and "| micro-code | lora | pass@1 | 4 | 3 | 1 | 1 | 2 |" in markdown
