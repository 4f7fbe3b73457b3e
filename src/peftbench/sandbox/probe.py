"""Can programs be graded here? One trial program through the whole sandbox, once per process."""

from __future__ import annotations

import functools

from peftbench.sandbox.grading import SandboxLimits
from peftbench.sandbox.isolation import _unavailable, sandbox_command, seccomp_program
from peftbench.sandbox.server import check_programs


@functools.lru_cache(maxsize=1)
def _checked() -> bool:
    sandbox_command(1 << 20)  # raises naming what is missing
    seccomp_program()
    result = check_programs(["def f():\n    return 41 + 1\n"], ["assert f() == 42"], SandboxLimits(timeout_s=20))[0]
    if not result.passed:
        hint = ("unprivileged user namespaces may be disabled: sysctl -w kernel.unprivileged_userns_clone=1, "
                "or on Ubuntu 24.04 sysctl -w kernel.apparmor_restrict_unprivileged_userns=0; in a container, "
                "allow user namespaces (or run it with --privileged)")
        raise _unavailable(f"a trial program did not run ({result.status}: {result.reason})", hint)
    return True


def require_isolation() -> None:
    """Check once per process that programs can be run isolated; SandboxUnavailable if not."""
    _checked()
