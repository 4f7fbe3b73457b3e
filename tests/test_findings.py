"""`peftbench findings`: each verdict rule on hand-made results (a claim that holds, one that
does not, one where nothing was learned), and a reduced run of two claims end to end."""


from peftbench.findings import CLAIMS


def run(method, seed, score, task="t", transfer=None, forgetting=None, cost=None, settings=None, train=None):
    out = {"run_id": f"{method}-{seed}-{settings}-{train}", "status": "done", "method": method, "task": task,
           "seed": seed, "eval": {"score": score, "scoring": "loglik"}, "train": {"mode": "sft"},
           "_config": {"method": settings or {}, "train": train or {}}}
    if transfer is not None:
        out["transfer"] = {"t2": {"score": transfer}}
    if forgetting is not None:
        out["retention"] = {"forgetting_points": forgetting}
    out["cost"] = cost or {"trainable_params": 1e5, "peak_memory_bytes": 1e9, "extra_inference_tflops": 0.0}
    return out


def base(score=0.5, task="t"):
    return {"run_id": f"base-{task}", "method": "base", "task": task, "status": "done",
            "eval": {"score": score, "scoring": "loglik"}}


def judge(number, **experiments):
    return CLAIMS.get(str(number)).judge(experiments)


def seeds(method, scores, **kw):
    return [run(method, s, v, **kw) for s, v in enumerate(scores)]


def test_claim_1_lora_best_holds_fails_and_needs_learning():
    holds = [base()] + seeds("lora", [0.95, 0.93, 0.94]) + seeds("ia3", [0.80, 0.82, 0.81])
    assert judge(1, methods=holds).verdict == "holds"
    fails = [base()] + seeds("lora", [0.75, 0.74, 0.76]) + seeds("full", [0.95, 0.96, 0.94])
    verdict = judge(1, methods=fails)
    assert verdict.verdict == "does not hold" and "full" in verdict.reason and "p =" in verdict.test
    nothing = [base()] + seeds("lora", [0.55, 0.56, 0.54]) + seeds("full", [0.60, 0.61, 0.62])
    verdict = judge(1, methods=nothing)
    assert verdict.verdict == "inconclusive" and verdict.reason.startswith("nothing learned")


def test_claim_2_pscp_ranking():
    def cost(gb):
        return {"trainable_params": 2e5, "peak_memory_bytes": gb * 1e9, "extra_inference_tflops": 0.0}

    # PSCP at beta 1 / beta 2 (params negligible): ln 90/1.106 = 81.3 / 73.5, x 97/1.213 = 80.0 / 65.9,
    # y 88/1.128 = 78.0 / 69.2: LN tuning first, x and y swap places as the penalty grows
    results = [base()] + seeds("lntuning", [0.90] * 3, cost=cost(10)) + seeds("x", [0.97] * 3, cost=cost(20)) \
        + seeds("y", [0.88] * 3, cost=cost(12))
    verdict = judge(2, methods=results)
    assert verdict.numbers == {"by PSCP, beta 1": "lntuning, x, y", "by PSCP, beta 2": "lntuning, y, x",
                               "by score": "x, lntuning, y"}
    assert verdict.verdict == "holds"
    results = [base()] + seeds("lntuning", [0.70] * 3, cost=cost(10)) + seeds("lora", [0.95] * 3, cost=cost(10))
    assert judge(2, methods=results).verdict == "does not hold"
    idle = [base()] + seeds("lntuning", [0.55] * 3, cost=cost(10)) + seeds("lora", [0.56] * 3, cost=cost(10))
    assert "nothing learned" in judge(2, methods=idle).reason


def test_claim_5_transfer_gap_holds_fails_and_waits_for_soft_prompts_to_learn():
    results = [base()] + seeds("lora", [0.95, 0.94, 0.96], transfer=0.85) + \
        [run("prompt", s, v, transfer=t) for s, (v, t) in enumerate([(0.90, 0.60), (0.91, 0.62), (0.89, 0.59)])] + \
        [run("prefix", s, v, transfer=t) for s, (v, t) in enumerate([(0.88, 0.55), (0.87, 0.50), (0.90, 0.57)])]
    assert judge(5, methods=results).verdict == "holds"
    same = [base()] + seeds("lora", [0.95, 0.94, 0.96], transfer=0.85) + \
        [run("prompt", s, v, transfer=v - 0.1) for s, v in enumerate([0.90, 0.91, 0.89])]
    assert judge(5, methods=same).verdict == "does not hold"
    idle = [base()] + seeds("lora", [0.95, 0.94, 0.96], transfer=0.85) + seeds("prompt", [0.52, 0.53, 0.51], transfer=0.5)
    verdict = judge(5, methods=idle)
    assert verdict.verdict == "inconclusive" and "did not learn" in verdict.reason


def test_claim_6_rank_plateau_and_learning_rate():
    def grid(cell):
        return [run("lora", s, cell(r, lr), settings={"r": r}, train={"lr": lr})
                for r in (2, 8, 32) for lr in (1e-3, 5e-3) for s in range(2)]

    plateau = [base()] + grid(lambda r, lr: (0.95 if lr == 5e-3 else 0.75) + (0.0 if r > 2 else -0.02))
    assert judge(6, **{"rank-lr": plateau}).verdict == "holds"
    by_rank = [base()] + grid(lambda r, lr: {2: 0.72, 8: 0.82, 32: 0.95}[r] + (0.01 if lr == 5e-3 else 0))
    assert judge(6, **{"rank-lr": by_rank}).verdict == "does not hold"
    # one cell of the grid learned, the rest did not: the grid learned (judged on its best cell,
    # not on a mix of cells under one method name)
    one_cell = [base()] + grid(lambda r, lr: 0.95 if (r, lr) == (2, 1e-3) else 0.45)
    assert judge(6, **{"rank-lr": one_cell}).verdict != "inconclusive"
    idle = [base()] + grid(lambda r, lr: 0.52)
    assert judge(6, **{"rank-lr": idle}).verdict == "inconclusive"


def test_claims_7_and_8_on_the_target_vs_retention_plane():
    results = [base()] + seeds("full", [0.97, 0.98, 0.96], forgetting=12.0) + \
        seeds("lora", [0.90, 0.91, 0.90], forgetting=3.0) + seeds("oft", [0.85, 0.86, 0.84], forgetting=0.5)
    assert judge(7, methods=results).verdict == "holds"
    assert judge(8, methods=results).verdict == "holds"  # the least forgetting: on the front
    flipped = [base()] + seeds("full", [0.97, 0.98, 0.96], forgetting=1.0) + \
        seeds("lora", [0.90, 0.91, 0.90], forgetting=9.0) + seeds("oft", [0.80, 0.81, 0.80], forgetting=9.5)
    assert judge(7, methods=flipped).verdict == "does not hold"
    assert judge(8, methods=flipped).verdict == "does not hold"
    idle = [base()] + seeds("full", [0.57, 0.58, 0.56], forgetting=12.0) + seeds("oft", [0.55] * 3, forgetting=0.5)
    assert "nothing learned" in judge(7, methods=idle).reason and "nothing learned" in judge(8, methods=idle).reason


def test_claim_12_needs_real_runs_and_rank_agreement():
    micro = [base()] + seeds("full", [0.99, 0.98, 0.99]) + seeds("lora", [0.9, 0.88, 0.9]) + \
        seeds("ia3", [0.7, 0.72, 0.71]) + seeds("prompt", [0.55, 0.54, 0.56])
    assert judge(12, methods=micro, real=[]).verdict == "inconclusive"
    real = [base(0.6, "sst2")] + [dict(r, task="sst2") for r in micro[1:]]
    assert judge(12, methods=micro, real=real).verdict == "holds"
    reversed_real = [base(0.3, "sst2")] + [dict(r, task="sst2", eval={**r["eval"], "score": 1.5 - r["eval"]["score"]})
                                           for r in micro[1:]]
    assert judge(12, methods=micro, real=reversed_real).verdict == "does not hold"
    barely = [base(0.85, "sst2")] + [dict(r, task="sst2") for r in micro[1:]]  # best +14 points: not learned
    assert "nothing learned" in judge(12, methods=micro, real=barely).reason


def test_a_reduced_findings_run_of_two_claims_executes(tmp_path):
    from peftbench.findings import run_findings
    from peftbench.findings.write import write_findings

    overrides = ["model.name=tiny-random-llama", "seeds=[0, 1]", "train.max_steps=4", "retention=null",
                 "analysis=null", "methods=[{name: lora, lr: 1.0e-3}, {name: prompt, lr: 1.0e-2}]",
                 "tasks=[{name: toy-sentiment-choice, max_train: 32, max_eval: 16}]"]
    verdicts, experiments = run_findings([1, 3], output_dir=str(tmp_path), show_progress=False, overrides=overrides)
    assert [v.claim for v in verdicts] == [1, 3] and set(experiments) == {"methods"}
    assert len([r for r in experiments["methods"] if r["method"] != "base"]) == 4
    assert all(v.verdict == "inconclusive" and "nothing learned" in v.reason for v in verdicts)  # 4 steps teach nothing
    markdown, page = write_findings(tmp_path / "findings", verdicts, experiments, "tiny-random-llama")
    assert "| 1 | PEFT-Bench |" in markdown.read_text() and "inconclusive" in page.read_text()


def test_claim_9_compares_forgetting_only_at_a_comparable_target_score():
    def grpo(scores, forgetting):
        return [dict(r, train={"mode": "grpo"}, run_id=r["run_id"] + "-grpo")
                for r in seeds("lora", scores, forgetting=forgetting)]

    sft = [base(0.1)] + seeds("lora", [0.60, 0.62, 0.61], forgetting=8.0)
    assert judge(9, grpo=sft + grpo([0.58, 0.60, 0.59], 2.0)).verdict == "holds"
    assert judge(9, grpo=sft + grpo([0.58, 0.60, 0.59], 12.0)).verdict == "does not hold"
    noisy = [dict(r, retention={"forgetting_points": f}) for r, f in zip(grpo([0.58, 0.60, 0.59], 0.0), (2.0, 15.0, 6.0))]
    verdict = judge(9, grpo=sft + noisy)  # mean 7.7 against 8.0, seeds disagreeing: no verdict either way
    assert verdict.verdict == "inconclusive" and "within noise" in verdict.reason
    # GRPO learned far less: forgetting less says nothing about RL
    verdict = judge(9, grpo=sft + grpo([0.20, 0.22, 0.21], 1.0))
    assert verdict.verdict == "inconclusive" and "not comparable" in verdict.reason
    nothing = [base(0.55)] + seeds("lora", [0.60, 0.62, 0.61], forgetting=8.0) + grpo([0.58, 0.60, 0.59], 2.0)
    assert "nothing learned" in judge(9, grpo=nothing).reason


def test_claim_numbers_are_in_numeric_order():
    from peftbench.findings import claim_numbers

    assert claim_numbers() == list(range(1, 13))  # the registry's names sort "10" before "2"


def test_claim_3_soft_prompt_stability_holds_fails_and_needs_learning():
    holds = [base()] + seeds("lora", [0.90, 0.91, 0.90]) + seeds("prompt", [0.70, 0.90, 0.80])
    verdict = judge(3, methods=holds)
    assert verdict.verdict == "holds" and "prompt" in verdict.reason
    fails = [base()] + seeds("lora", [0.70, 0.95, 0.85]) + seeds("prompt", [0.80, 0.81, 0.80])
    assert judge(3, methods=fails).verdict == "does not hold"
    idle = [base()] + seeds("lora", [0.90, 0.91, 0.90]) + seeds("prompt", [0.50, 0.60, 0.52])
    assert "no soft-prompt method learned" in judge(3, methods=idle).reason
    assert "nothing learned" in judge(3, methods=[base()] + seeds("lora", [0.55, 0.56, 0.54])).reason


def test_claim_4_different_winners_by_domain():
    sentiment = [base(0.5, "micro-sentiment")] + seeds("lora", [0.95, 0.94, 0.96], task="micro-sentiment") + \
        seeds("full", [0.90, 0.91, 0.90], task="micro-sentiment")
    math_full = [base(0.03, "micro-math")] + seeds("full", [0.45, 0.40, 0.43], task="micro-math") + \
        seeds("lora", [0.30, 0.32, 0.31], task="micro-math")
    verdict = judge(4, methods=sentiment, math=math_full)
    assert verdict.verdict == "holds" and verdict.reason == "winners by domain: micro-sentiment: lora, micro-math: full"
    math_lora = [dict(r, eval={**r["eval"], "score": 1.3 - r["eval"]["score"]}) if r["method"] == "lora" else r
                 for r in math_full]  # lora 0.98-1.0 on math too
    assert judge(4, methods=sentiment, math=math_lora).verdict == "does not hold"
    idle_math = [base(0.03, "micro-math")] + seeds("lora", [0.05, 0.06, 0.04], task="micro-math")
    verdict = judge(4, methods=sentiment, math=idle_math)
    assert verdict.verdict == "inconclusive" and "micro-math" in verdict.reason


def _with_path(r, overshoot):
    return dict(r, _path={"best": {"overshoot": overshoot, "best_alpha": 0.6 if overshoot else 1.0}})


def test_claim_10_overshoot_on_most_paths():
    runs = seeds("lora", [0.90, 0.91, 0.90]) + seeds("full", [0.95, 0.96, 0.95])
    over = [base()] + [_with_path(r, i != 0) for i, r in enumerate(runs)]
    assert judge(10, methods=over).verdict == "holds"
    under = [base()] + [_with_path(r, i == 0) for i, r in enumerate(runs)]
    assert judge(10, methods=under).verdict == "does not hold"
    assert "nothing learned" in judge(10, methods=[base()] + [_with_path(r, True) for r in seeds("lora", [0.5] * 3)]).reason


def test_claim_11_rank_correlation_of_fluctuation_and_forgetting():
    def spectral(runs, sign):
        return [dict(r, _spectral={"summary": {"adaptation_fluctuation": 0.1 * (i + 1)}},
                     retention={"forgetting_points": 10 + sign * i}) for i, r in enumerate(runs)]

    runs = seeds("lora", [0.90, 0.91, 0.90]) + seeds("full", [0.95, 0.96, 0.95])
    assert judge(11, methods=[base()] + spectral(runs, +1)).verdict == "holds"
    assert judge(11, methods=[base()] + spectral(runs, -1)).verdict == "does not hold"
    assert judge(11, methods=[base()] + spectral(runs[:4], +1)).verdict == "inconclusive"  # 6 runs needed


def test_every_findings_experiment_validates_on_a_real_model(tmp_path):
    """`--model smollm2-135m` (or a hub id) swaps the model of every experiment, budgets as configured."""
    from peftbench.findings.claims import CLAIMS as REGISTERED
    from peftbench.findings.run import _suite

    names = sorted({e for n in REGISTERED.names() for e in REGISTERED.get(n).experiments} - {"real"})
    assert names == ["grpo", "math", "methods", "rank-lr"]
    for name in names:
        runs = _suite(name, "smollm2-135m", str(tmp_path)).expand()
        assert runs and {r.model.name for r in runs} == {"smollm2-135m"}, name
