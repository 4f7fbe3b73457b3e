"""Turn a task's prompt/answer text into token ids, the same way for training and evaluation.

Prompt and answer are tokenised separately and concatenated, so the loss mask falls
exactly on the answer's tokens and the model is trained on the very prompt ids that
generation later conditions on.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100  # label value the loss skips (torch cross_entropy's ignore_index)


def render_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> str:
    """The tokenizer's chat template when it has one, the plain prompt otherwise; the model's
    system prompt (model.system_prompt) as its own turn, or as a first paragraph."""
    system = getattr(tokenizer, "peftbench_system_prompt", None)
    if getattr(tokenizer, "chat_template", None):
        turns = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    return f"{system}\n\n{prompt}" if system else prompt


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    text = render_prompt(tokenizer, prompt)
    # A chat template already writes the BOS token into the text; don't add a second.
    add_special = not getattr(tokenizer, "chat_template", None)
    return tokenizer(text, add_special_tokens=add_special)["input_ids"]


def encode_answer(tokenizer: PreTrainedTokenizerBase, answer: str, with_eos: bool = True) -> list[int]:
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    return ids + [tokenizer.eos_token_id] if with_eos else ids


@dataclass(frozen=True)
class EncodedExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX on prompt tokens

    @property
    def target_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def encode_for_training(
    tokenizer: PreTrainedTokenizerBase, prompt: str, answer: str, max_length: int, loss_on_prompt: bool = False
) -> EncodedExample:
    prompt_ids = encode_prompt(tokenizer, prompt)
    answer_ids = encode_answer(tokenizer, answer)
    overflow = len(prompt_ids) + len(answer_ids) - max_length
    if overflow > 0:
        # Keep the answer (it is what we learn) and the end of the prompt (nearest to it);
        # an answer longer than half the window is cut too, so some context remains.
        answer_ids = answer_ids[: max(max_length // 2, max_length - len(prompt_ids))]
        prompt_ids = prompt_ids[len(prompt_ids) + len(answer_ids) - max_length :]
    prompt_labels = prompt_ids if loss_on_prompt else [IGNORE_INDEX] * len(prompt_ids)
    return EncodedExample(input_ids=prompt_ids + answer_ids, labels=prompt_labels + answer_ids)
