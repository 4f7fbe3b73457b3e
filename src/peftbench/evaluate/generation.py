"""Batched generation with left padding, longest prompts first."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Sequence

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from peftbench.config import EvalConfig
from peftbench.evaluate.batch_size import generation_rows
from peftbench.evaluate.prefill import last_logits_only, left_pad, prefill
from peftbench.models.compat import peft_generation_sees_the_cache, with_cache
from peftbench.progress import progress_bar


def generation_config(cfg: EvalConfig, tokenizer) -> GenerationConfig:
    sampling = {"temperature": cfg.temperature, "top_p": cfg.top_p} if cfg.do_sample else {}
    return GenerationConfig(
        max_new_tokens=cfg.max_new_tokens,
        do_sample=cfg.do_sample,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **sampling,
    )


@contextmanager
def decoding_as_configured(model) -> Iterator[None]:
    """Decode with the eval settings alone. `generate` fills every field its GenerationConfig
    leaves unset from the model's own `generation_config`: a model card's
    repetition_penalty, top_k or no_repeat_ngram_size would then shape the answers of the
    methods scored through `generate` (soft prompts, unmerged adapters) but not of those
    scored by `decode_compacting`, and methods would not be compared alike."""
    from peftbench.models.loading import transformer_of

    inner = transformer_of(model)
    own = inner.generation_config
    inner.generation_config = GenerationConfig()
    try:
        yield
    finally:
        inner.generation_config = own


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
    choose = next_token_rule(cfg)
    model.eval()
    with decoding_as_configured(model), progress_bar(len(prompts), "generating", show_progress) as advance:
        start, one_length = 0, pads_shift_positions(model)
        while start < len(order):
            rows = generation_rows(model, cfg, len(prompts[order[start]]))
            if one_length:
                rows = min(rows, same_length_run(prompts, order, start))
            chunk = order[start : start + rows]
            start += len(chunk)
            if compacts(model):
                new_tokens = decode_compacting(model, tokenizer, [prompts[i] for i in chunk], cfg.max_new_tokens,
                                               complete, choose)
            else:
                ids, mask = left_pad([prompts[i] for i in chunk], tokenizer.pad_token_id)
                stopping = StoppingCriteriaList([AnswerComplete(tokenizer, ids.shape[1], complete)]) if complete else None
                with peft_generation_sees_the_cache(model), warnings.catch_warnings():
                    # peft drops the position ids; the batch has no padding, so none are needed
                    warnings.filterwarnings("ignore", message="Position ids are not supported")
                    out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                         generation_config=gen_cfg, stopping_criteria=stopping)
                new_tokens = out[:, ids.shape[1] :]
            for i, row in zip(chunk, new_tokens):
                outputs[i] = tokenizer.decode(row, skip_special_tokens=True)
            advance(len(chunk))
    return outputs


def pads_shift_positions(model) -> bool:
    """peft's prompt learning (soft prompts, P-tuning, prefixes) drops the position ids that
    `generate` computes for left-padded rows ("Position ids are not supported"), so in a
    padded row the pads sit between the virtual tokens and the prompt and count as
    positions: the prompt's tokens are further from the virtual ones than in training, and
    a row's prediction would depend on its batch. Such models generate in batches of
    prompts of one length, which need no padding."""
    from peftbench.models.loading import is_peft_prompt_learning

    return is_peft_prompt_learning(model)


def same_length_run(prompts: Sequence[list[int]], order: Sequence[int], start: int) -> int:
    """How many prompts from `order[start]` on have its length (`order` is sorted by length)."""
    length, end = len(prompts[order[start]]), start
    while end < len(order) and len(prompts[order[end]]) == length:
        end += 1
    return end - start


def eos_token_ids(tokenizer) -> list[int]:
    """The tokens that end a continuation (a tokenizer may name one or several)."""
    eos = tokenizer.eos_token_id
    return [eos] if isinstance(eos, int) else list(eos or [])


class AnswerFinal:
    """The task's answer-final test, applied every CHECK_EVERY steps rather than every
    step: each test decodes the row's whole text, which for a batch of 200 rows costs as
    much host time as a tenth of the model's forward passes on two CPU cores. A row found
    final is cut back to the shortest unchecked prefix whose text is final, so it ends on
    the very token a test at every step would stop at (the tests are monotone: once final,
    longer text stays final; tested). The rows that become final run up to CHECK_EVERY - 1
    tokens too far first, which costs less than the tests saved."""

    CHECK_EVERY = 4

    def __init__(self, tokenizer, complete: Optional[Callable[[str], bool]]):
        self.tokenizer, self.complete = tokenizer, complete

    def _final(self, tokens: list[int]) -> bool:
        return self.complete(self.tokenizer.decode(tokens, skip_special_tokens=True))

    def cut(self, tokens: list[int], step: int, last: bool) -> bool:
        """Whether the row's answer is final after `step` tokens (truncating `tokens` to where it
        became so). `last`: the row ends here anyway (EOS, or the token budget), so it is
        tested now whatever the step."""
        if self.complete is None or not (last or step % self.CHECK_EVERY == 0) or not self._final(tokens):
            return False
        unchecked = (step - 1) % self.CHECK_EVERY  # tokens before this one added since the last test
        for length in range(len(tokens) - unchecked, len(tokens)):
            if self._final(tokens[:length]):
                del tokens[length:]
                break
        return True


def compacts(model) -> bool:
    """A plain transformers model (a base, merged or fully tuned one) decodes through
    `decode_compacting`; wrapped models (adapters that are not merged, soft prompts)
    through `generate`."""
    from transformers import PreTrainedModel

    return isinstance(model, PreTrainedModel)


def next_token_rule(cfg: EvalConfig) -> Callable[[torch.Tensor], torch.Tensor]:
    """(rows, vocab) logits -> (rows,) tokens: the argmax, or with `do_sample` a draw from
    the softmax after transformers' temperature and top-p warpers, as `generate` samples
    under the same settings."""
    if not cfg.do_sample:
        return lambda logits: logits.argmax(-1)
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

    warpers = LogitsProcessorList(([TemperatureLogitsWarper(cfg.temperature)] if cfg.temperature != 1.0 else [])
                                  + ([TopPLogitsWarper(cfg.top_p)] if cfg.top_p < 1.0 else []))
    return lambda logits: torch.multinomial(warpers(None, logits.float()).softmax(-1), 1)[:, 0]


@torch.inference_mode()
def decode_compacting(model, tokenizer, prompts: Sequence[list[int]], max_new_tokens: int,
                      complete: Optional[Callable[[str], bool]] = None,
                      choose: Callable[[torch.Tensor], torch.Tensor] = lambda logits: logits.argmax(-1),
                      ) -> list[list[int]]:
    """Decoding with a KV cache that drops each row from the batch once it is done (EOS, or
    its answer is final), so the rest run on a smaller batch. `generate` keeps finished
    rows in every forward pass until the last row ends: with one long answer in a batch of
    short ones, that is most of the work. A prefix all prompts share (few-shot examples),
    and each prompt given several times (samples for pass@k), is prefilled once
    (`prefill`). `choose` picks each step's tokens (`next_token_rule`); greedy, the tokens
    are those of `generate` (tested)."""
    eos = set(eos_token_ids(tokenizer))
    rows = list(range(len(prompts)))  # original row of each live batch row
    new_tokens: list[list[int]] = [[] for _ in rows]
    state = prefill(model, prompts, tokenizer.pad_token_id)
    cache, mask, logits = state.cache, state.mask, state.logits
    last_only, cached = last_logits_only(model), with_cache(model, cache)
    final = AnswerFinal(tokenizer, complete)
    for step in range(1, max_new_tokens + 1):
        keep = []
        for live, (row, token) in enumerate(zip(rows, choose(logits).tolist())):
            new_tokens[row].append(token)
            last = token in eos or step == max_new_tokens
            if not final.cut(new_tokens[row], step, last) and not last:
                keep.append(live)
        if not keep:
            break
        chosen = torch.tensor([new_tokens[rows[live]][-1] for live in keep], device=mask.device)
        if len(keep) < len(rows):
            index = torch.tensor(keep, device=mask.device)
            cache.batch_select_indices(index)
            mask = mask[index]
            rows = [rows[i] for i in keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        step_positions = (mask.sum(-1, keepdim=True) - 1)
        logits = model(input_ids=chosen[:, None], attention_mask=mask, position_ids=step_positions,
                       use_cache=True, **cached, **last_only).logits[:, -1]
    return new_tokens
