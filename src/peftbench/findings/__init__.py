"""`peftbench findings`: the studies' claims put to the test on your model.

Each claim (claims.py) names the experiments it reads: shipped suites under
configs/findings/, run like any suite (resumable, shared between the claims that need
them). Its rule turns their results into a verdict with the numbers it rests on; write.py
puts them in findings.md and findings.html.
"""

from peftbench.findings.claims import CLAIMS, Claim, Verdict, claim_numbers
from peftbench.findings.run import run_findings

__all__ = ["CLAIMS", "Claim", "Verdict", "claim_numbers", "run_findings"]
