"""LoRA and a soft prompt trained jointly (seed 002's hybrid: r=8 and 8 virtual tokens).

peft cannot put prompt learning and LoRA in one model, so the LoRA part is an ordinary
peft model and the soft prompt is a trainable embedding prepended by a thin wrapper
(`SoftPromptModel`) that also extends the attention mask and labels. Both parts are
saved and reloaded: `lora/` (peft) and `prompt.safetensors`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from pydantic import Field
from torch import nn

from peftbench.methods.base import METHOD_FILE, Method, MethodContext, register_method
from peftbench.methods.lora import Lora, LoraParams
from peftbench.prompting import IGNORE_INDEX

PROMPT_FILE = "prompt.safetensors"


class LoraPromptParams(LoraParams):
    num_virtual_tokens: int = Field(8, gt=0)


class SoftPromptModel(nn.Module):
    """A causal LM that sees `n` trained virtual-token embeddings before every input.

    Logits are returned for the real tokens only, so callers index them exactly as for
    the bare model; `generate` returns prompt + new tokens like transformers does.
    """

    def __init__(self, model: nn.Module, num_virtual_tokens: int):
        super().__init__()
        self.model = model
        embeddings = model.get_input_embeddings().weight
        # start from the embeddings of random vocabulary tokens (seeded by the run's seed)
        start = torch.randint(0, embeddings.shape[0], (num_virtual_tokens,))
        self.prompt = nn.Parameter(embeddings[start.to(embeddings.device)].detach().clone())

    @property
    def config(self):
        return self.model.config

    @property
    def num_virtual_tokens(self) -> int:
        return self.prompt.shape[0]

    def _prepend(self, input_ids, attention_mask, labels=None):
        batch, n = input_ids.shape[0], self.num_virtual_tokens
        embeds = self.model.get_input_embeddings()(input_ids)
        prompt = self.prompt.to(embeds.dtype).unsqueeze(0).expand(batch, -1, -1)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        ones = torch.ones(batch, n, dtype=attention_mask.dtype, device=attention_mask.device)
        extended = {"inputs_embeds": torch.cat([prompt, embeds], 1), "attention_mask": torch.cat([ones, attention_mask], 1)}
        if labels is not None:
            ignore = torch.full((batch, n), IGNORE_INDEX, dtype=labels.dtype, device=labels.device)
            extended["labels"] = torch.cat([ignore, labels], 1)
        return extended

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        keep = kwargs.get("logits_to_keep")
        if isinstance(keep, torch.Tensor) and keep.dtype == torch.bool:
            # a position mask over the real tokens: the virtual ones are never kept, and the
            # logits come back as (kept positions, vocab), with nothing to cut off
            kwargs["logits_to_keep"] = torch.nn.functional.pad(keep, (self.num_virtual_tokens, 0), value=False)
            return self.model(**self._prepend(input_ids, attention_mask, labels), **kwargs)
        out = self.model(**self._prepend(input_ids, attention_mask, labels), **kwargs)
        out.logits = out.logits[:, self.num_virtual_tokens :]
        return out

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, **kwargs):
        new_tokens = self.model.generate(**self._prepend(input_ids, attention_mask), **kwargs)
        return torch.cat([input_ids, new_tokens], 1)


@register_method
class LoraPrompt(Method):
    name = "lora+prompt"
    family = "hybrid"
    description = "LoRA and a trained soft prompt together (peft cannot combine them; built here)"
    Params = LoraPromptParams

    def attach(self, model, params: LoraPromptParams, ctx=MethodContext()):
        lora = Lora().attach(model, LoraParams(**params.model_dump(exclude={"num_virtual_tokens"})), ctx)
        wrapped = SoftPromptModel(lora, params.num_virtual_tokens)
        wrapped._peftbench_params = params
        return wrapped

    def save(self, model: SoftPromptModel, path: Path) -> None:
        from safetensors.torch import save_file

        path.mkdir(parents=True, exist_ok=True)
        model.model.save_pretrained(str(path / "lora"))
        save_file({"prompt": model.prompt.detach().contiguous().cpu()}, str(path / PROMPT_FILE))
        (path / METHOD_FILE).write_text(json.dumps({"method": self.name, "params": model._peftbench_params.model_dump()}))

    def load(self, base_model, path: Path):
        from peft import PeftModel
        from safetensors.torch import load_file

        params = self.params(json.loads((path / METHOD_FILE).read_text())["params"])
        wrapped = SoftPromptModel(PeftModel.from_pretrained(base_model, str(path / "lora")), params.num_virtual_tokens)
        with torch.no_grad():
            wrapped.prompt.copy_(load_file(str(path / PROMPT_FILE))["prompt"])
        wrapped._peftbench_params = params
        return wrapped

    def reference_trainable_count(self, model: SoftPromptModel):
        return model.model.get_nb_trainable_parameters()[0] + model.prompt.numel()
