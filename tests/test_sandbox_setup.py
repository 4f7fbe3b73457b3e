"""What holds without the sandbox: the refusal to grade code where it cannot be set up,
and the pass@k arithmetic."""

import pytest

from peftbench.metrics.code import pass_at_k
from peftbench.sandbox import SandboxUnavailable, isolation


def test_without_bubblewrap_code_tasks_refuse_to_run(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to find there
    with pytest.raises(SandboxUnavailable, match="bubblewrap.*apt install bubblewrap"):
        isolation.sandbox_command(1 << 20)


@pytest.mark.parametrize("n,c,k,expected", [
    (1, 1, 1, 1.0), (1, 0, 1, 0.0), (10, 3, 1, 0.3), (5, 2, 2, 1 - 3 / 10), (10, 0, 5, 0.0), (4, 3, 2, 1.0),
    (10, 5, 5, 1 - 1 / 252),
])
def test_pass_at_k_matches_closed_form(n, c, k, expected):
    # hand-worked: 1 - C(n-c, k)/C(n, k); e.g. n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
