"""Batched generation with left padding, longest prompts first."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from peftbench.config import EvalConfig
from peftbench.progress import progress_bar


def left_pad(sequences: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq) :] = torch.tensor(seq)
        mask[row, width - len(seq) :] = 1
    return ids, mask


def generation_config(cfg: EvalConfig, tokenizer) -> GenerationConfig:
    sampling = {"temperature": cfg.temperature, "top_p": cfg.top_p} if cfg.do_sample else {}
    return GenerationConfig(
        max_new_tokens=cfg.max_new_tokens,
        do_sample=cfg.do_sample,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **sampling,
    )


class AnswerComplete(StoppingCriteria):
    """Stops each sequence once `complete(its text so far)` holds: the task's answer is final
    (e.g. the first line has ended), so no further token can change the score."""

    def __init__(self, tokenizer, prompt_width: int, complete: Callable[[str], bool]):
        self.tokenizer, self.prompt_width, self.complete = tokenizer, prompt_width, complete

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_width :], skip_special_tokens=True)
        return torch.tensor([self.complete(text) for text in texts], dtype=torch.bool, device=input_ids.device)


@torch.inference_mode()
def generate(model, tokenizer, prompts: Sequence[list[int]], cfg: EvalConfig, show_progress: bool = True,
             complete: Optional[Callable[[str], bool]] = None) -> list[str]:
    """Continuations (special tokens removed) for prompts given as token ids, in input order.
    With `complete`, a sequence stops as soon as its text satisfies it (besides EOS)."""
    device = next(model.parameters()).device
    # Longest first: similar lengths share a batch (less padding), and an out-of-memory
    # error, if any, shows up on the very first batch rather than at the end.
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    outputs: list[str] = [""] * len(prompts)
    gen_cfg = generation_config(cfg, tokenizer)
    model.eval()
    with progress_bar(len(prompts), "generating", show_progress) as advance:
        for start in range(0, len(order), cfg.batch_size):
            chunk = order[start : start + cfg.batch_size]
            ids, mask = left_pad([prompts[i] for i in chunk], tokenizer.pad_token_id)
            stopping = StoppingCriteriaList([AnswerComplete(tokenizer, ids.shape[1], complete)]) if complete else None
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=gen_cfg,
                                 stopping_criteria=stopping)
            new_tokens = out[:, ids.shape[1] :]
            for i, row in zip(chunk, new_tokens):
                outputs[i] = tokenizer.decode(row, skip_special_tokens=True)
            advance(len(chunk))
    return outputs
