"""Load a base model and its tokenizer from a built-in name, a local folder or a hub id."""

from __future__ import annotations

from typing import Optional

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from peftbench.config import ModelConfig
from peftbench.errors import PeftbenchError
from peftbench.models.builtin import BUILTIN_MODELS, PACKAGED_MODELS, builtin_model_path, cache_home
from peftbench.models.gguf import dequantised_folder, resolve_gguf
from peftbench.launch import launched_device

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str) -> torch.device:
    if device != "auto":
        return torch.device(device)
    if (own := launched_device()) is not None:  # one of several processes of `accelerate launch`: its GPU
        return own
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype != "auto":
        return _DTYPES[dtype]
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def resolve_source(name: str, gguf_file: Optional[str] = None, revision: Optional[str] = None) -> str:
    """A built-in name or a GGUF checkpoint becomes a local folder; anything else goes to transformers as is."""
    gguf = resolve_gguf(name, gguf_file, revision)
    if gguf is not None:
        return str(dequantised_folder(gguf, cache_home()))
    if name in PACKAGED_MODELS:
        path = PACKAGED_MODELS.get(name)
        if not (path / "config.json").is_file():
            raise PeftbenchError(f"the packaged model {name!r} is missing from {path}; reinstall peftbench")
        return str(path)
    if name in BUILTIN_MODELS:
        return str(builtin_model_path(name))
    return name


def model_source(cfg: ModelConfig) -> str:
    return resolve_source(cfg.name, cfg.gguf_file, cfg.revision)


def load_tokenizer(cfg: ModelConfig) -> PreTrainedTokenizerBase:
    source = model_source(cfg)
    tokenizer = AutoTokenizer.from_pretrained(
        source, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code
    )
    if not cfg.chat_template:  # prompts as plain text (model.chat_template: false)
        tokenizer.chat_template = None
    tokenizer.peftbench_system_prompt = cfg.system_prompt  # read by prompting.render_prompt
    if tokenizer.pad_token is None:
        # Causal LMs often ship without a pad token; EOS is the usual stand-in, and
        # padded positions are masked out of both the loss and attention anyway.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(cfg: ModelConfig, **extra) -> PreTrainedModel:
    """`extra` goes to from_pretrained (a method's needs, e.g. a 4-bit quantization_config)."""
    source = model_source(cfg)
    device = resolve_device(cfg.device)
    model = AutoModelForCausalLM.from_pretrained(
        source,
        dtype=resolve_dtype(cfg.dtype, device),
        revision=cfg.revision,
        trust_remote_code=cfg.trust_remote_code,
        **extra,
    )
    if "quantization_config" in extra:  # quantised models are placed by their loader
        return model
    return model.to(device)


def load_model_and_tokenizer(cfg: ModelConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    return load_model(cfg), load_tokenizer(cfg)


def transformer_of(model) -> PreTrainedModel:
    """The transformers model inside a peft or hand-written wrapper (the first PreTrainedModel)."""
    return next(m for m in model.modules() if isinstance(m, PreTrainedModel))


def is_peft_prompt_learning(model) -> bool:
    """A peft model of the prompt-learning kind (soft prompt, P-tuning, prefix tuning)."""
    configs = getattr(model, "peft_config", None) or {}
    return any(getattr(config, "is_prompt_learning", False) for config in configs.values())
