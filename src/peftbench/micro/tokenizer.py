"""The micro model's tokenizer: byte-level BPE trained on the micro world's own text.

Digits are split one per token (as llama does) so arithmetic sees every digit; byte
level means any text, code included, tokenizes without unknown tokens.
"""

from __future__ import annotations

from itertools import islice

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from peftbench.models.char_tokenizer import SPECIAL_TOKENS
from peftbench.micro.splits import GENERATORS, split_examples


def training_corpus() -> list[str]:
    """Text of every micro task's training split, targets included (the tokenizer only)."""
    texts = []
    for name in GENERATORS:
        texts += [e.prompt + e.answer for e in islice(split_examples(name, "train"), 1000)]
    return texts


def train_tokenizer(vocab_size: int = 768) -> PreTrainedTokenizerFast:
    core = Tokenizer(models.BPE(unk_token=None))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(training_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, **SPECIAL_TOKENS)
