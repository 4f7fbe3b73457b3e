import pytest

from peftbench.analysis.stats import bootstrap_ci, paired_permutation_test
from peftbench.cost.pscp import PscpConstants, pscp


def test_pscp_reproduces_the_paper_example():
    # PEFT-Bench's own inputs: LNTuning ahead of LoRA despite the lower score
    ln = pscp(77.8, 266_240, 0.0, 27.43)
    lora = pscp(80.1, 14_680_064, 0.0, 27.75)
    assert round(ln, 2) == 60.19 and round(lora, 2) == 60.08 and ln > lora


def test_pscp_hand_example_and_constants():
    # 50 * 1/(1+1) * 1/(1+1) * 1/(1+1) with every cost equal to its constant
    assert pscp(50, 5e8, 10, 94) == pytest.approx(6.25)
    assert pscp(50, 5e8, 10, 94, PscpConstants(b_params=0, b_flops=0, b_memory=0)) == 50
    with pytest.raises(ValueError, match="memory_gb"):
        pscp(50, 1, 0, -1)


def test_bootstrap_ci_contains_mean_and_shrinks_with_agreement():
    wide = bootstrap_ci([0.1, 0.9, 0.5, 0.3, 0.7])
    narrow = bootstrap_ci([0.49, 0.51, 0.5, 0.5, 0.5])
    assert wide.mean == pytest.approx(0.5) and wide.low < wide.mean < wide.high
    assert narrow.high - narrow.low < wide.high - wide.low
    assert bootstrap_ci([0.4]).low == bootstrap_ci([0.4]).high == 0.4


def test_paired_test_known_cases():
    # identical methods: nothing to find
    assert paired_permutation_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7]) == 1.0
    # A beats B by the same margin on all 5 seeds: exact p = 2/32 (all-plus or all-minus flips)
    assert paired_permutation_test([0.8, 0.7, 0.9, 0.6, 0.75], [0.7, 0.6, 0.8, 0.5, 0.65]) == pytest.approx(2 / 32)
    # mixed signs: clearly not significant
    assert paired_permutation_test([0.8, 0.6, 0.7, 0.5], [0.7, 0.7, 0.6, 0.6]) > 0.5


def test_t_interval_matches_a_hand_worked_example():
    from peftbench.analysis.stats import t_interval

    # mean 0.7, sd 0.1 (ddof 1), n 3: half-width t(0.975, 2) * 0.1 / sqrt(3) = 4.3027 * 0.057735 = 0.24841
    interval = t_interval([0.6, 0.7, 0.8])
    assert interval.mean == pytest.approx(0.7)
    assert interval.low == pytest.approx(0.7 - 0.24841, abs=1e-4) and interval.high == pytest.approx(0.7 + 0.24841, abs=1e-4)
    assert t_interval([0.4]).low == t_interval([0.4]).high == 0.4


def test_paired_t_test_tells_three_consistent_seeds_apart_where_a_sign_flip_test_cannot():
    from peftbench.analysis.stats import paired_t_test

    best, other = [0.90, 0.95, 0.85], [0.60, 0.70, 0.55]  # differences 0.30, 0.25, 0.30
    assert paired_permutation_test(best, other) == pytest.approx(0.25)  # 2 of 8 sign flips: never below 0.25
    # hand-worked: mean 0.28333, sd 0.028868, t = 0.28333 / (0.028868 / sqrt 3) = 17.0, df 2 -> p = 0.00344
    assert paired_t_test(best, other) == pytest.approx(0.00344, abs=2e-4)
    assert paired_t_test([1.0, 1.0, 1.0], [0.5, 0.5, 0.5]) == 0.0 and paired_t_test(best, best) == 1.0


def test_the_papers_pscp_table_is_reproduced_from_its_published_averages():
    from pathlib import Path

    from peftbench.report.pscp_table import published_costs, pscp_rows

    csv = Path(__file__).resolve().parents[1] / "benchmarks" / "peft_bench_published_averages.csv"
    rows = {row[1]: row for row in pscp_rows(published_costs(csv), beta=1)}
    assert rows["lntuning"][-1] == "60.19" and rows["lora"][-1] == "60.08"  # the paper's table, beta 1
    assert [r[1] for r in pscp_rows(published_costs(csv), beta=1)] == ["lntuning", "lora"]  # LN tuning ranks first


def test_method_level_pscp_is_pscp_of_the_averages_not_the_average_of_pscps():
    from peftbench.report.pscp_table import method_costs

    def run(task, score, params, gb):
        return {"status": "done", "method": "m", "task": task, "eval": {"score": score},
                "cost": {"trainable_params": params, "peak_memory_bytes": gb * 1e9, "extra_inference_tflops": 0.0}}

    results = [run("sst2", 0.8, 1e6, 20.0), run("gsm8k", 0.4, 3e6, 40.0), run("conala", 0.6, 2e6, 30.0)]
    by_category = {c.category: c for c in method_costs(results)}
    overall = by_category["all"]
    assert (overall.tasks, overall.score, overall.trainable_params, overall.memory_gb) == (3, pytest.approx(60.0), 2e6, 30.0)
    assert overall.pscp(PscpConstants()) == pytest.approx(pscp(60.0, 2e6, 0.0, 30.0))
    assert by_category["math"].score == pytest.approx(40.0) and by_category["code"].score == pytest.approx(60.0)
    assert by_category["nlu & reasoning"].memory_gb == pytest.approx(20.0)
