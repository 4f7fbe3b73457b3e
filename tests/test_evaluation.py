"""The evaluator's batching must not change what the model predicts."""

import pytest
import torch

from peftbench.config import EvalConfig, ModelConfig
from peftbench.evaluate.generation import generate, left_pad
from peftbench.evaluate.loglik import continuation_logprobs
from peftbench.models import load_model, load_tokenizer
from peftbench.prompting import encode_answer, encode_prompt
from peftbench.run import evaluate_model
from peftbench.config import TaskConfig


def micro():
    cfg = ModelConfig(name="micro", device="cpu")
    return load_model(cfg), load_tokenizer(cfg)


def model_and_tokenizer():
    cfg = ModelConfig(device="cpu")
    return load_model(cfg), load_tokenizer(cfg)


def test_batched_left_padded_generation_equals_one_by_one():
    model, tok = model_and_tokenizer()
    prompts = [encode_prompt(tok, p) for p in ["a", "Number: 12345\nParity:", "hello there", "xy"]]
    cfg = EvalConfig(batch_size=4, max_new_tokens=8)
    batched = generate(model, tok, prompts, cfg, show_progress=False)
    single = [generate(model, tok, [p], cfg.model_copy(update={"batch_size": 1}), show_progress=False)[0] for p in prompts]
    assert batched == single
    assert any(batched)  # a random model still emits something


def test_loglik_matches_manual_computation_and_ignores_padding():
    model, tok = model_and_tokenizer()
    pairs = [(encode_prompt(tok, "Number: 4\nParity:"), encode_answer(tok, " even", with_eos=False)),
             (encode_prompt(tok, "ab"), encode_answer(tok, " odd", with_eos=False))]
    batched = continuation_logprobs(model, tok.pad_token_id, pairs, batch_size=2)
    for (ctx, cont), score in zip(pairs, batched):
        ids = torch.tensor([ctx + cont])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0], -1)
        manual = sum(logprobs[len(ctx) - 1 + j, t].item() for j, t in enumerate(cont))
        assert abs(manual - score) < 1e-4


def test_choices_sharing_one_context_pass_score_as_whole_sequences():
    from peftbench.evaluate.loglik import shared_context_logprobs

    model, tok = micro()
    # contexts of different lengths (left padding), choices of one and of several tokens,
    # and a different number of choices per context
    contexts = [encode_prompt(tok, p) for p in ["Symptoms: fever and cough.\nDiagnosis:", "ab", "Is it so?"]]
    texts = [[" flu", " common cold", " a broken arm"], [" odd", " even"], [" yes", " no", " maybe so", " x"]]
    choices = [[encode_answer(tok, t, with_eos=False) for t in options] for options in texts]
    lengths = {len(c) for options in choices for c in options}
    assert 1 in lengths and max(lengths) > 2
    shared = shared_context_logprobs(model, tok.pad_token_id, contexts, choices)
    for ctx, options, scores in zip(contexts, choices, shared):
        whole = continuation_logprobs(model, tok.pad_token_id, [(ctx, c) for c in options], batch_size=8)
        assert scores == pytest.approx(whole, abs=1e-4)
        assert len(set(round(x, 3) for x in scores)) == len(scores)  # distinct: a wrong pairing would show


def test_merged_and_wrapped_models_pick_the_same_choices():
    # the plain model shares each context's pass; the same weights behind a wrapper score whole sequences
    from peftbench.evaluate.loglik import choose, shares_context
    from peftbench.tasks import TASKS

    model, tok = micro()
    wrapped = torch.nn.Sequential(model)
    wrapped.forward = model.forward
    assert shares_context(model) and not shares_context(wrapped)
    for name in ("micro-med", "micro-sentiment"):
        task = TASKS.get(name)
        examples = task.examples(task.eval_split, limit=40, seed=0)
        contexts = [encode_prompt(tok, e.prompt) for e in examples]
        choices = [[encode_answer(tok, c, with_eos=False) for c in e.choices] for e in examples]
        picks = choose(model, tok, contexts, choices, 16, show_progress=False)
        assert picks == choose(wrapped, tok, contexts, choices, 16, show_progress=False)
        assert len(set(picks)) > 1  # not a constant answer


def test_loglik_task_scores_with_choices():
    result = evaluate_model(ModelConfig(device="cpu"), TaskConfig(name="toy-sentiment-choice", max_eval=16),
                            EvalConfig(batch_size=8), show_progress=False)
    assert result["samples"] == 16
    assert all(r["prediction"] in (" positive", " negative") for r in result["records"])
    assert 0.0 <= result["score"] <= 1.0


def test_several_samples_per_problem_feed_pass_at_k():
    import pytest

    from peftbench.errors import ConfigError
    from peftbench.validate import validate_eval_request

    cfg = EvalConfig(batch_size=8, max_new_tokens=6, do_sample=True, num_samples=3)
    result = evaluate_model(ModelConfig(device="cpu"), TaskConfig(name="micro-code", max_eval=3, allow_code_execution=True),
                            cfg, show_progress=False)
    assert [len(r["prediction"]) for r in result["records"]] == [3, 3, 3]  # every sample kept, per problem
    assert result["scores"]["pass@1"] == 0.0  # a random model writes no passing code
    with pytest.raises(ConfigError, match="do_sample"):
        validate_eval_request({"task": "micro-math", "eval": {"num_samples": 4}})


def test_extraction_complete_holds_only_when_no_further_text_can_change_the_answer():
    from peftbench.tasks.base import EXTRACTION_COMPLETE, EXTRACTORS

    cases = {
        "first_line": [("\n  42", False), (" 42\nmore", True), ("", False)],
        "label": [("Yes", False), (" Yes.\nBecause", True)],
        "choice_letter": [("B", False), ("(B", False), ("(B) because", True), ("Answer: C.", True)],
        "code": [("```python\ndef f():\n    return 1", False), ("```python\ndef f():\n    return 1\n```\nIt works", True),
                 ("    return 1\n", False)],
        "bbh": [(" True", False), (" True\n\nQ: next", True)],
        # the first number after the first '####'; without the marker the last number (EOS only)
        "final_number": [("3 + 4 = 7\n", False), ("#### ", False), ("#### 42", False), ("#### 42.", False),
                         ("#### 1,", False), ("#### 4\ufffd", False), ("#### 42.\ufffd", False),
                         ("so 7 apples\n#### 42\n", True), ("#### 42 apples", True), ("#### 42.5\n", True),
                         ("#### 1,000\n", True), ("#### -3.\n", True), ("#### 42,\n", True)],
    }
    for extractor, examples in cases.items():
        complete, extract = EXTRACTION_COMPLETE.get(extractor), EXTRACTORS.get(extractor)
        for text, expected in examples:
            assert complete(text) is expected, (extractor, text)
            if expected:  # whatever follows, the extraction stays the same, and the text stays final
                for more in ["", " x", "\nD) 7\n```\nQ: 9", "Z", "5", ".5", ",000", "\n#### 9"]:
                    assert extract(text + more) == extract(text), (extractor, text, more)
                    assert complete(text + more), (extractor, text, more)  # monotone: decoding tests it in strides


def test_stopping_when_the_answer_is_final_gives_identical_predictions_with_fewer_tokens(parity_task):
    # the random model rambles across lines: the first line is final long before max_new_tokens
    model, tok = model_and_tokenizer()
    eval_cfg = EvalConfig(batch_size=8, max_new_tokens=32)
    prompts = [encode_prompt(tok, e.prompt) for e in parity_task.examples("test", limit=32)]
    full = generate(model, tok, prompts, eval_cfg, show_progress=False)
    early = generate(model, tok, prompts, eval_cfg, show_progress=False, complete=parity_task.extraction_complete)
    assert [parity_task.extract(t) for t in early] == [parity_task.extract(t) for t in full]
    assert all(f.startswith(e) for e, f in zip(early, full))
    assert sum(map(len, early)) < sum(map(len, full))  # some rows stopped at their first line


def test_a_task_can_cap_its_own_generation_budget(parity_task):
    from conftest import PARITY_TASK

    cfg = ModelConfig(name="tiny-random-llama", device="cpu")
    eval_cfg = EvalConfig(batch_size=16, max_new_tokens=12)
    long = evaluate_model(cfg, TaskConfig(name=PARITY_TASK, max_eval=8), eval_cfg, show_progress=False)
    short = evaluate_model(cfg, TaskConfig(name=PARITY_TASK, max_eval=8, max_new_tokens=2), eval_cfg, show_progress=False)
    assert max(len(r["output"]) for r in short["records"]) <= 2  # one character per token
    assert max(len(r["output"]) for r in long["records"]) > 2


def test_compacting_greedy_decoding_gives_the_tokens_of_generate():
    from peftbench.evaluate.generation import decode_compacting
    from peftbench.tasks import TASKS

    for name in ("tiny-random-llama", "micro"):
        cfg = ModelConfig(name=name, device="cpu")
        model, tok = load_model(cfg), load_tokenizer(cfg)
        prompts = [encode_prompt(tok, e.prompt) for n in ("micro-copy", "micro-math", "micro-facts")
                   for e in TASKS.get(n).examples("test", limit=4)]
        ids, mask = left_pad(prompts, tok.pad_token_id)
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=20, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        reference = [tok.decode(row, skip_special_tokens=True) for row in out[:, ids.shape[1]:]]
        with torch.no_grad():
            compact = [tok.decode(row, skip_special_tokens=True) for row in decode_compacting(model, tok, prompts, 20)]
        assert compact == reference, name
        # with an answer-complete test, each row is the reference cut at the very token where
        # its answer became final (tested in strides of AnswerFinal.CHECK_EVERY, then cut back)
        first_line = TASKS.get("micro-copy").extraction_complete
        final = lambda tokens: first_line(tok.decode(tokens, skip_special_tokens=True))  # noqa: E731,B023
        with torch.no_grad():
            cut = decode_compacting(model, tok, prompts, 20, first_line)
        tokens = [row[row != tok.pad_token_id].tolist() if tok.pad_token_id != tok.eos_token_id else row.tolist()
                  for row in out[:, ids.shape[1]:]]
        for row, whole in zip(cut, tokens):
            assert row == whole[:len(row)], name
            assert not any(final(row[:n]) for n in range(1, len(row))), name  # never final earlier
            if len(row) < len(whole) and whole[len(row) - 1] != tok.eos_token_id:
                assert final(row), name  # stopped because it was final
        if name == "tiny-random-llama":  # it rambles across lines (micro ends its lines with EOS)
            assert sum(map(len, cut)) < sum(map(len, tokens))  # so some rows did stop early


def few_shot_prompts(tok, task_name: str, shots: int, questions: int) -> list[list[int]]:
    """Prompts as a few-shot task writes them: the same solved examples, then a question."""
    from peftbench.tasks import TASKS

    task = TASKS.get(task_name)
    solved = "".join(e.prompt + e.answer + "\n\n" for e in task.examples("train", limit=shots, seed=1))
    return [encode_prompt(tok, solved + e.prompt) for e in task.examples("test", limit=questions)]


def tokens_run(model):
    """A counter of the input tokens every forward pass of `model` embeds."""
    seen = []
    model.get_input_embeddings().register_forward_hook(lambda m, args, out: seen.append(args[0].numel()))
    return seen


def test_shared_prefix_is_the_common_start_leaving_each_prompt_its_last_token():
    from peftbench.evaluate.prefill import shared_prefix_length

    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5, 6], [1, 2, 9]]) == 2
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3, 4]]) == 2  # the shorter keeps its last token
    assert shared_prefix_length([[7, 1], [8, 1]]) == 0
    assert shared_prefix_length([[5, 5, 5]]) == 2


def test_few_shot_prompts_run_their_shared_examples_once_and_decode_as_generate():
    from peftbench.evaluate.generation import decode_compacting
    from peftbench.evaluate.prefill import MIN_SHARED_TOKENS, shared_prefix_length

    model, tok = micro()
    for task_name in ("micro-math", "micro-copy"):
        prompts = few_shot_prompts(tok, task_name, shots=3, questions=6)
        shared = shared_prefix_length(prompts)
        assert shared >= MIN_SHARED_TOKENS
        ids, mask = left_pad(prompts, tok.pad_token_id)
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        seen = tokens_run(model)
        compact = decode_compacting(model, tok, prompts, 12)
        assert [tok.decode(r, skip_special_tokens=True) for r in compact] == \
            [tok.decode(r, skip_special_tokens=True) for r in out[:, ids.shape[1]:]], task_name
        # the prefill: the prefix once, then each row's own tail (left-padded to the longest)
        tail = max(len(p) for p in prompts) - shared
        assert seen[:2] == [shared, len(prompts) * tail]


def test_few_shot_choices_score_as_whole_sequences_with_the_prefix_run_once():
    from peftbench.evaluate.loglik import shared_context_logprobs
    from peftbench.evaluate.prefill import shared_prefix_length

    model, tok = micro()
    contexts = few_shot_prompts(tok, "micro-sentiment", shots=2, questions=3)
    texts = [[" positive", " negative"], [" negative", " positive", " great movie"], [" no"]]
    choices = [[encode_answer(tok, t, with_eos=False) for t in options] for options in texts]
    seen = tokens_run(model)
    shared = shared_context_logprobs(model, tok.pad_token_id, contexts, choices)
    assert seen[0] == shared_prefix_length(contexts) >= 16
    for ctx, options, scores in zip(contexts, choices, shared):
        whole = continuation_logprobs(model, tok.pad_token_id, [(ctx, c) for c in options], batch_size=8)
        assert scores == pytest.approx(whole, abs=1e-4)


def test_auto_batch_size_follows_the_kv_cache_budget_by_hand():
    from peftbench.config import EvalConfig, ModelConfig
    from peftbench.evaluate.batch_size import MAX_ROWS, generation_rows, kv_bytes_per_token
    from peftbench.models import load_model

    model = load_model(ModelConfig(name="micro", device="cpu"))
    c = model.config
    # micro: 4 layers x 4 key-value heads (grouped-query) x 32 dims, key and value, float32
    assert kv_bytes_per_token(model) == 2 * 4 * 4 * 32 * 4 == 4096
    auto = EvalConfig(batch_size="auto", max_new_tokens=24)
    per_row = 4096 * (40 + 24) + c.vocab_size * 4
    assert generation_rows(model, auto, 40, budget=10 * per_row) == 10
    assert generation_rows(model, auto, 40, budget=10 * per_row - 1) == 9
    assert generation_rows(model, auto, 40, budget=1) == 1  # never zero rows
    assert generation_rows(model, auto, 40, budget=1 << 40) == MAX_ROWS
    assert generation_rows(model, EvalConfig(batch_size=7), 40, budget=1) == 7  # a number is taken as given


def test_auto_batches_give_the_predictions_of_batches_of_16():
    """Bigger batches (and logits for the last position only) change speed, not answers."""
    from peftbench.config import EvalConfig, ModelConfig
    from peftbench.evaluate import evaluate_task
    from peftbench.models import load_model, load_tokenizer
    from peftbench.tasks import TASKS

    cfg = ModelConfig(name="micro", device="cpu")
    model, tokenizer = load_model(cfg), load_tokenizer(cfg)
    for name in ("micro-math", "micro-copy", "micro-med"):  # generation, and log-likelihood (micro-med)
        task = TASKS.get(name)
        examples = task.examples(task.eval_split, 48, seed=0)
        runs = [evaluate_task(model, tokenizer, task, examples, EvalConfig(batch_size=b, max_new_tokens=24),
                              show_progress=False) for b in (16, "auto")]
        assert [r["prediction"] for r in runs[0]["records"]] == [r["prediction"] for r in runs[1]["records"]], name


def test_eval_batch_size_takes_a_number_or_auto_and_names_the_field_otherwise():
    import pytest

    from peftbench.validate import validate_run_config
    from peftbench.errors import ConfigError

    base = {"model": {"name": "micro"}, "method": {"name": "lora"}, "task": {"name": "micro-math"}}
    assert validate_run_config({**base, "eval": {"batch_size": "auto"}}).eval.batch_size == "auto"
    for bad in (0, "big"):
        with pytest.raises(ConfigError, match="eval.batch_size"):
            validate_run_config({**base, "eval": {"batch_size": bad}})


def test_a_model_cards_generation_defaults_do_not_change_how_methods_are_decoded():
    from peftbench.methods import METHODS
    from peftbench.tasks import TASKS

    model, tok = micro()
    # what a hub model's generation_config.json may carry (Qwen2.5-Instruct: repetition_penalty 1.05)
    model.generation_config.repetition_penalty = 1.5
    model.generation_config.no_repeat_ngram_size = 2
    prompts = [encode_prompt(tok, e.prompt) for n in ("micro-copy", "micro-math") for e in TASKS.get(n).examples("test", limit=4)]
    cfg = EvalConfig(batch_size=8, max_new_tokens=16)
    plain = generate(model, tok, prompts, cfg, show_progress=False)  # a plain model: decode_compacting
    lora = METHODS.get("lora")
    wrapped = lora.attach(model, lora.params({"r": 4}))  # B starts at zero: the same function, through generate
    assert generate(wrapped, tok, prompts, cfg, show_progress=False) == plain
    assert model.generation_config.repetition_penalty == 1.5  # the model's own config is put back


def test_sampled_first_tokens_follow_the_temperature_and_top_p_distribution():
    from peftbench.evaluate.generation import decode_compacting, next_token_rule

    model, tok = micro()
    prompt = encode_prompt(tok, "Ben has")  # an open continuation: many likely tokens
    temperature, top_p, draws = 1.5, 0.8, 8000
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt])).logits[0, -1].double()
    # by hand: softmax at the temperature, keep the most likely tokens until their mass reaches top_p
    probs = (logits / temperature).softmax(-1)
    ordered = probs.sort(descending=True)
    keep = int((ordered.values.cumsum(0) < top_p).sum()) + 1
    nucleus = ordered.indices[:keep]
    expected = torch.zeros_like(probs)
    expected[nucleus] = probs[nucleus] / probs[nucleus].sum()
    assert 5 <= keep < len(probs) // 2  # a real choice among many tokens, and a real cut
    torch.manual_seed(0)
    rule = next_token_rule(EvalConfig(do_sample=True, temperature=temperature, top_p=top_p))
    firsts = [row[0] for row in decode_compacting(model, tok, [prompt] * draws, 1, choose=rule)]
    counts = torch.bincount(torch.tensor(firsts), minlength=len(probs)).double() / draws
    assert set(firsts) <= set(nucleus.tolist())  # nothing outside the nucleus
    assert 0.5 * (counts - expected).abs().sum() < 0.05  # total variation distance
    untempered = logits.softmax(-1)  # the draws tell the temperature apart
    assert 0.5 * (counts - untempered).abs().sum() > 0.1


def test_sampling_is_seeded_and_repeated_prompts_run_once():
    from peftbench.tasks import TASKS

    model, tok = micro()
    prompts = [encode_prompt(tok, e.prompt) for e in TASKS.get("micro-code").examples("test", limit=3)]
    samples = [p for p in prompts for _ in range(5)]  # as pass@k asks: 5 rows per problem
    cfg = EvalConfig(batch_size=16, max_new_tokens=24, do_sample=True, temperature=2.0, num_samples=5)
    seen = tokens_run(model)
    torch.manual_seed(1)
    first = generate(model, tok, samples, cfg, show_progress=False)
    assert seen[0] == 3 * max(map(len, prompts))  # the prefill: each problem once, left-padded
    torch.manual_seed(1)
    assert generate(model, tok, samples, cfg, show_progress=False) == first
    assert len({tuple(first[i : i + 5]) for i in range(0, 15, 5)}) == 3
    assert all(len(set(first[i : i + 5])) > 1 for i in range(0, 15, 5))  # samples of one problem differ


def greedy_by_forward(model, prompt: list[int], new_tokens: int, eos: int) -> list[int]:
    """Greedy continuation by whole-sequence forward passes of one unpadded row, no cache,
    up to EOS: the reference."""
    ids = torch.tensor([prompt])
    with torch.no_grad():
        for _ in range(new_tokens):
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
            ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
            if ids[0, -1] == eos:
                break
    return ids[0, len(prompt):].tolist()


@pytest.mark.parametrize("name", ["prefix", "prompt", "ptuning", "lora+prompt"])
def test_soft_prompt_methods_generate_what_their_forward_pass_predicts(name):
    """Soft prompts and prefixes reach generation through peft's generate hooks, which must
    inject them once, at the prefill (transformers 5.24 renamed the cache keyword those
    hooks look for: peft then dropped the prefix and re-inserted prompts every step); and a
    prompt's prediction must not depend on the length of the others in its batch (peft
    drops the position ids of left-padded rows)."""
    from peftbench.methods import METHODS, MethodContext

    model, tok = micro()
    method = METHODS.get(name)
    torch.manual_seed(0)
    model = method.attach(model, method.params({}), MethodContext(total_steps=4))
    with torch.no_grad():  # a prefix or prompt strong enough to change every prediction
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.mul_(30)
    model.eval()
    texts = ["Leo has 7 pens. Leo gets 5 more.\nAnswer:", "Ana has 3 coins.\nAnswer:", "Ben has 4.\nAnswer:",
             "Tom has 5 coins.\nAnswer:", "Ben has 6.\nAnswer:"]
    prompts = [encode_prompt(tok, t) for t in texts]
    assert len({len(p) for p in prompts}) < len(prompts) < 4 * len({len(p) for p in prompts})  # some lengths repeat
    expected = [tok.decode(greedy_by_forward(model, p, 6, tok.eos_token_id), skip_special_tokens=True) for p in prompts]
    base_model, _ = micro()
    base = generate(base_model, tok, prompts, EvalConfig(max_new_tokens=6), show_progress=False)
    assert expected != base  # the soft prompt matters here
    assert generate(model, tok, prompts, EvalConfig(batch_size=4, max_new_tokens=6), show_progress=False) == expected


def test_one_token_choices_are_scored_from_one_pass_of_the_context_even_through_a_soft_prompt():
    from peftbench.evaluate.loglik import next_token_logprobs
    from peftbench.methods import METHODS, MethodContext

    model, tok = micro()
    method = METHODS.get("prompt")
    model = method.attach(model, method.params({"num_virtual_tokens": 4}), MethodContext()).eval()
    contexts = few_shot_prompts(tok, "micro-sentiment", shots=0, questions=5)
    contexts = contexts[:2] + [contexts[2][:5]] + contexts[3:]  # one much shorter: padding in the batch
    choices = [[encode_answer(tok, t, with_eos=False) for t in (" positive", " negative")]] * len(contexts)
    assert all(len(option) == 1 for option in choices[0])
    fast = next_token_logprobs(model, tok.pad_token_id, contexts, choices, batch_size=3)
    for ctx, options, scores in zip(contexts, choices, fast):
        whole = continuation_logprobs(model, tok.pad_token_id, [(ctx, c) for c in options], batch_size=8)
        assert scores == pytest.approx(whole, abs=1e-4)


@pytest.mark.parametrize("name", ["prompt", "ptuning", "prefix", "lora+prompt", "lora"])
def test_loglik_computing_logits_at_scored_positions_only_equals_whole_sequence_logits(name):
    """Log-likelihood scoring asks for vocabulary logits at the scored positions only (a
    position mask, widened for the virtual tokens a soft prompt puts in front); each score
    must equal one computed from the model's full logits of the sequence run alone."""
    from peftbench.methods import METHODS, MethodContext
    from peftbench.models.position_mask import selects_positions

    model, tok = micro()
    method = METHODS.get(name)
    torch.manual_seed(0)
    model = method.attach(model, method.params({}), MethodContext()).eval()
    assert selects_positions(model)
    pairs = [(encode_prompt(tok, p), encode_answer(tok, a, with_eos=False))
             for p, a in [("Number: 4\nParity:", " even"), ("ab", " common cold"), ("Is it so? yes or no", " no")]]
    batched = continuation_logprobs(model, tok.pad_token_id, pairs, batch_size=3)
    for (ctx, cont), score in zip(pairs, batched):
        ids = torch.tensor([ctx + cont])
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -ids.shape[1]:]
        logprobs = torch.log_softmax(logits.float(), -1)
        assert score == pytest.approx(sum(logprobs[len(ctx) - 1 + j, t].item() for j, t in enumerate(cont)), abs=1e-4)
