"""Where a result came from: versions, code revision, seed, data hashes, host, times."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Optional

_PACKAGES = ("peftbench", "torch", "transformers", "peft", "datasets", "accelerate", "tokenizers", "pydantic")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, Optional[str]]:
    versions: dict[str, Optional[str]] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision(path: Path) -> Optional[str]:
    """HEAD of the git checkout holding `path` (with '+dirty' if it has changes), if any."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=path, capture_output=True, text=True, timeout=5
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def collect(seed: int, data_hashes: dict[str, str], started: str, extra: Optional[dict] = None) -> dict:
    import torch

    return {
        "seed": seed,
        "data_sha256": data_hashes,
        "packages": package_versions(),
        "git_revision": git_revision(Path(__file__).resolve().parent),
        "host": platform.node(),
        "platform": platform.platform(),
        "argv": sys.argv,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "started": started,
        "finished": now(),
        **(extra or {}),
    }
