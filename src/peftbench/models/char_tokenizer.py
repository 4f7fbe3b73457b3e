"""A character-level tokenizer in the standard Hugging Face format.

Built-in models that the project makes itself need a tokenizer that exists offline;
one token per printable ASCII character is enough for procedurally generated text and
round-trips exactly, which keeps the toy world easy to reason about.
"""

from __future__ import annotations

import string

from tokenizers import Tokenizer, decoders, models
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    chars = [c for c in string.printable if c not in "\r\x0b\x0c"]
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS.values())}
    for char in chars:
        vocab.setdefault(char, len(vocab))
    # BPE with no merges is exactly "one token per character", with <unk> for the rest.
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=SPECIAL_TOKENS["unk_token"]))
    core.decoder = decoders.Fuse()  # join characters back without inserted spaces
    return PreTrainedTokenizerFast(tokenizer_object=core, **SPECIAL_TOKENS)
