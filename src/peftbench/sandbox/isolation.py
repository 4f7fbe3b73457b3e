"""Operating-system isolation for model-generated programs: bubblewrap and seccomp.

A sandboxed program gets:

- its own PID, network, IPC, UTS and mount namespaces (bubblewrap): it sees only its own
  processes, has no network, and when the grader kills bwrap the kernel kills everything
  in the namespace, double-forked `setsid()` daemons included;
- a read-only view of the system libraries and the interpreter and nothing else of the
  host (no home, no /etc, no /root), a private size-capped tmpfs as its working
  directory, a fresh /proc of its own namespace and a minimal /dev;
- an unprivileged identity. Run by root (as CI and many containers are), bwrap makes the
  namespaces as root and keeps only CAP_SETUID/CAP_SETGID, which the agent spends at once
  dropping to uid/gid 65534 (nobody): every capability is gone before the program is
  read. Run by a user, an unprivileged user namespace with no capability;
- an empty environment but for a few fixed variables;
- a seccomp filter (`seccomp_program`) and resource limits, which the agent installs
  before the program's first line (agent.py).

Where any of this cannot be set up, `require_isolation` raises SandboxUnavailable naming
what is missing and how to get it. There is no weaker fallback: a program is graded in
this sandbox or not at all.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from peftbench.errors import PeftbenchError
from peftbench.sandbox.agent import NOBODY  # noqa: F401  (the identity the agent drops to)


# Syscalls that reach outside the namespaces or widen the kernel's attack surface; refused
# with EPERM (Docker's default profile refuses the same families). exec and fork are
# refused too: a graded program is one process (threads are fine).
DENIED_SYSCALLS = (
    "execve", "execveat", "fork", "vfork",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_open", "pidfd_getfd", "pidfd_send_signal",
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsmount", "fsconfig", "fspick",
    "move_mount", "open_tree", "mount_setattr",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "acct", "syslog", "iopl", "ioperm", "quotactl", "lookup_dcookie",
    "open_by_handle_at", "name_to_handle_at", "clock_settime", "clock_adjtime", "settimeofday", "adjtimex",
    "sethostname", "setdomainname", "vhangup", "fanotify_init", "move_pages", "migrate_pages", "mbind",
    "personality", "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
    "link", "linkat",
)
_CLONE_THREAD = 0x00010000
_AF_UNIX = 1
_TIOCSTI = 0x5412


class SandboxUnavailable(PeftbenchError):
    """The operating-system sandbox cannot be set up on this machine."""


def _unavailable(missing: str, fix: str) -> SandboxUnavailable:
    return SandboxUnavailable(
        f"code tasks run model-generated programs only inside peftbench's sandbox, which cannot be set up here: "
        f"{missing}. {fix}")


@functools.lru_cache(maxsize=1)
def seccomp_program() -> bytes:
    """The seccomp filter as a raw BPF program for the native architecture (other
    architectures' syscall ABIs, such as i386 on x86_64, kill the process)."""
    try:
        import pyseccomp as sc
    except ImportError:
        raise _unavailable("the pyseccomp package is not installed", 'pip install "peftbench[code]"') from None
    except OSError as exc:  # pyseccomp loads libseccomp when imported
        raise _unavailable(f"libseccomp could not be loaded ({exc})",
                           "install the system library: apt install libseccomp2 (Debian/Ubuntu), "
                           "dnf install libseccomp (Fedora)") from None
    rules = sc.SyscallFilter(sc.ALLOW)
    refuse = sc.ERRNO(errno.EPERM)
    for name in DENIED_SYSCALLS:
        if sc.resolve_syscall(sc.Arch.NATIVE, name) >= 0:  # absent on this architecture: nothing to refuse
            rules.add_rule(refuse, name)
    rules.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # its flags sit in memory, out of a filter's reach; libc falls back to clone
    rules.add_rule(refuse, "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, 0))  # a new process, not a thread
    rules.add_rule(refuse, "socket", sc.Arg(0, sc.NE, _AF_UNIX))
    rules.add_rule(refuse, "prlimit64", sc.Arg(0, sc.NE, 0))  # another process's limits
    rules.add_rule(refuse, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, _TIOCSTI))  # typing into a terminal
    with tempfile.TemporaryFile() as handle:
        rules.export_bpf(handle)
        handle.seek(0)
        return handle.read()


def _bwrap_help(bwrap: str) -> str:
    return subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10).stdout


def _mirror_root_links() -> list[str]:
    """/bin, /lib, ... as on the host: symlinks into /usr (merged /usr) or read-only binds."""
    args = []
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    return args


def _bind_readonly(path: str) -> list[str]:
    """A read-only bind of `path` at the same place, its parents made traversable (bwrap
    would create them 0700, which nobody cannot pass)."""
    if path == "/usr" or path.startswith("/usr/"):
        return []
    args = []
    parents = list(reversed(Path(path).parents))[1:]  # without "/"
    for parent in parents:
        args += ["--perms", "0755", "--dir", str(parent)]
    return args + ["--ro-bind", path, path]


def interpreter() -> str:
    """The Python the agent runs on: the base interpreter (a venv adds nothing the agent uses)."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def sandbox_command(tmpfs_bytes: int) -> list[str]:
    """The command that runs the agent isolated; the agent's two pipe descriptors follow it."""
    if not sys.platform.startswith("linux"):
        raise _unavailable(f"it needs Linux namespaces (this is {sys.platform})",
                           "run code tasks on Linux, or in a Linux container or VM")
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise _unavailable("bubblewrap (bwrap) is not installed",
                           "apt install bubblewrap (Debian/Ubuntu), dnf install bubblewrap (Fedora), "
                           "pacman -S bubblewrap (Arch)")
    as_root = os.geteuid() == 0
    command = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
               "--new-session", "--cap-drop", "ALL"]
    if as_root:  # namespaces made by root; the agent drops to nobody before the program is read
        command += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        command += ["--unshare-user"]
    python = interpreter()
    prefix = os.path.realpath(sys.base_prefix)
    size = ["--size", str(tmpfs_bytes)] if "--size" in _bwrap_help(bwrap) else []
    command += ["--ro-bind", "/usr", "/usr", *_mirror_root_links(), *_bind_readonly(prefix),
                "--perms", "1777", *size, "--tmpfs", "/tmp", "--chdir", "/tmp", "--proc", "/proc", "--dev", "/dev",
                "--clearenv", "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp", "--setenv", "LANG", "C.UTF-8",
                "--setenv", "PYTHONHASHSEED", "0", "--setenv", "PATH", "/usr/bin:/bin", "--"]
    return command + [python, "-I", "-S", "-B", "-c", AGENT_SOURCE]


AGENT_SOURCE = (Path(__file__).parent / "agent.py").read_text(encoding="utf-8")
