from peftbench.config import ModelConfig
from peftbench.models import load_tokenizer
from peftbench.prompting import IGNORE_INDEX, encode_for_training, encode_prompt


def tokenizer():
    return load_tokenizer(ModelConfig())


def test_loss_mask_covers_exactly_the_answer_and_eos():
    tok = tokenizer()
    enc = encode_for_training(tok, "Q: 2+2\nA:", " 4", max_length=64)
    prompt_len = len(encode_prompt(tok, "Q: 2+2\nA:"))
    assert enc.labels[:prompt_len] == [IGNORE_INDEX] * prompt_len
    assert enc.labels[prompt_len:] == enc.input_ids[prompt_len:]
    assert tok.decode(enc.labels[prompt_len:]) == " 4</s>"


def test_truncation_keeps_answer_and_end_of_prompt():
    tok = tokenizer()
    enc = encode_for_training(tok, "x" * 100 + "END", " yes", max_length=20)
    assert len(enc.input_ids) == 20
    assert tok.decode(enc.input_ids).endswith("END yes</s>")
    assert enc.target_tokens == 5


def test_chat_template_is_used_when_present():
    tok = tokenizer()
    tok.chat_template = "{% for m in messages %}<s>[{{ m['content'] }}]{% endfor %}{% if add_generation_prompt %}>{% endif %}"
    ids = encode_prompt(tok, "hi")
    assert tok.decode(ids) == "<s>[hi]>"
    assert ids.count(tok.bos_token_id) == 1  # the template's BOS, none added on top
