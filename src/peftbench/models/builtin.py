"""Models the project builds itself, so the whole pipeline runs with no download.

A built-in model is materialised once as an ordinary Hugging Face folder (config,
safetensors, tokenizer) and from then on loads through exactly the same
`from_pretrained` path as a hub model: only the name differs.
"""

from __future__ import annotations

import os
from pathlib import Path
from dataclasses import dataclass
from typing import Callable

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from peftbench.io import atomic_write_dir
from peftbench.models.char_tokenizer import build_char_tokenizer
from peftbench.registry import Registry


@dataclass(frozen=True)
class BuiltinModel:
    build: Callable[[Path], None]  # writes the model folder into the given directory
    version: int  # bump when the recipe changes, so stale cached copies are not reused


BUILTIN_MODELS: Registry[BuiltinModel] = Registry("built-in model")


# name -> a model folder shipped inside the package (the micro model)
PACKAGED_MODELS: Registry[Path] = Registry("packaged model")
PACKAGED_MODELS.register("micro", Path(__file__).resolve().parent.parent / "micro" / "model")


def cache_home() -> Path:
    return Path(os.environ.get("PEFTBENCH_HOME", Path.home() / ".cache" / "peftbench"))


def builtin_model_path(name: str) -> Path:
    """Folder of a built-in model, building it on first use."""
    entry = BUILTIN_MODELS.get(name)
    path = cache_home() / "models" / f"{name}-v{entry.version}"
    if not (path / "config.json").is_file():
        atomic_write_dir(path, entry.build)
    return path


def _write_tiny_random_llama(out: Path) -> None:
    # A randomly initialised llama: a placeholder base for smoke tests and the toy
    # quickstart. It knows nothing; fine-tuning is what makes it useful. The init is
    # wider than llama's 0.02: with a frozen random head of width 64, std 0.02 caps
    # every logit near 1.3, so no adapter could make a confident prediction.
    tokenizer = build_char_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        initializer_range=0.2,
    )
    # a private RNG scope: the model is written on first use, in the middle of a run, whose
    # seeded state (adapter init, shuffling) must not depend on whether the cache was warm
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


BUILTIN_MODELS.register("tiny-random-llama", BuiltinModel(_write_tiny_random_llama, version=2))
