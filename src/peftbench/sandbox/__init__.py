"""Run model-generated programs against their tests without trusting them.

- isolation.py: the operating-system sandbox (bubblewrap namespaces, an unprivileged
  user, seccomp, rlimits, a private tmpfs) and the check that it can be set up here;
- agent.py: the one process inside, which runs the program and answers with plain data;
- grading.py: the trusted side, which runs the tests against the program's answers;
- server.py: warm grading servers and `check_programs`, the entry point.

docs/sandbox.md says what the sandbox promises and what it does not.
"""

from peftbench.sandbox.grading import STATUSES, ExecutionResult, SandboxLimits
from peftbench.sandbox.isolation import SandboxUnavailable
from peftbench.sandbox.probe import require_isolation
from peftbench.sandbox.server import SandboxServer, check_programs, job_for

__all__ = ["STATUSES", "ExecutionResult", "SandboxLimits", "SandboxUnavailable", "SandboxServer", "check_programs",
           "job_for", "require_isolation"]
