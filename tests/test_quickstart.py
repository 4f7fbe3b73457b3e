"""The default job separates methods and keeps the terminal clean: a reduced quickstart (two
methods, one task, fewer steps) run as a user runs it."""

import re
import subprocess
import sys

from peftbench.report.build import load_runs
from peftbench.report.summary import summarise


def test_a_reduced_quickstart_beats_the_base_beyond_doubt_with_no_warning_in_the_terminal(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "peftbench", "run", "quickstart", "--output-dir", str(tmp_path),
         "--set", "methods=[{name: full, lr: 3.0e-4}, {name: lntuning, lr: 0.2}]",
         "--set", "tasks=[{name: micro-sentiment, max_eval: 100}]", "--set", "train.max_steps=250"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    # LN tuning on RMSNorm makes peft warn on every layer, transformers deprecations follow:
    # none of it reaches the terminal, all of it is in the suite's warnings.log
    noise = [line for line in result.stderr.splitlines() if re.search(r"Warning\b|warnings\.warn|warn\(", line)]
    assert noise == []
    logged = (tmp_path / "quickstart" / "warnings.log").read_text()
    assert "Unsupported layer type" in logged and len(set(logged.splitlines())) == len(logged.splitlines())
    assert "micro-sentiment (accuracy by log-likelihood, base model" in result.stdout and "best: full" in result.stdout

    rows = {row.method: row for row in summarise(load_runs(tmp_path / "quickstart"))}
    best = rows["full"]
    assert best.rank == 1 and len(best.scores) == 3
    low, high = best.difference
    assert best.vs_base >= 20 and low > 0  # the gain is larger than its own 95% interval's half-width
    assert best.against_base == "above" and f"+{best.vs_base:.1f} ↑" in result.stdout
