"""Is a model name something peftbench can load? Answered without importing torch, so a
config is checked before anything loads."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

# what the hub accepts as a repository id: "name" or "owner/name"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_BUILT_IN = ("micro", "tiny-random-llama", "smollm2-135m")  # models/builtin.py, models/gguf.py (tested to agree)


def _cached_on_hub(repo: str, filename: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename)
    return isinstance(found, str)


def model_name_problem(name: str, gguf_file: Optional[str] = None, reachable: bool = False) -> Optional[str]:
    """None if `name` is a built-in model, an existing folder, or a hub id; else what is
    wrong and how to fix it, in one line. With `reachable`, a hub id must also be in the
    hub cache when HF_HUB_OFFLINE is set (checked when a run starts, not when a config is
    validated: a protocol for a GPU machine validates anywhere)."""
    if name in _BUILT_IN:
        return None
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            return f"{name!r} is a file; give the model's folder (with config.json, or a .gguf file as gguf_file)"
        if gguf_file and not (path / gguf_file).is_file():
            return f"no file {gguf_file!r} in {name}"
        return None
    if not _HUB_ID.match(name):
        return (f"no such folder {name!r}; give a local model folder, a hub id such as "
                f"HuggingFaceTB/SmolLM2-135M-Instruct, or a built-in model ({', '.join(_BUILT_IN)})")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if reachable and offline and not _cached_on_hub(name, gguf_file or "config.json"):
        return (f"{name!r} is not a local folder nor in the hub cache, and HF_HUB_OFFLINE=1 forbids downloading it; "
                "give a local folder, or download it once online")
    return None
