"""Score a micro model on every micro task and write its model card (card.json + README.md)."""

from __future__ import annotations

import json
from pathlib import Path

from peftbench.config import EvalConfig
from peftbench.evaluate import evaluate_task
from peftbench.tasks import TASKS
from peftbench.tasks.micro import GENERAL_TASKS, TARGET_TASKS

CARD_EVAL = EvalConfig(batch_size=64, max_new_tokens=24)


def score_model(model, tokenizer, samples: int = 200, show_progress: bool = True) -> dict[str, float]:
    scores = {}
    for name in GENERAL_TASKS + TARGET_TASKS:
        task = TASKS.get(name)
        examples = task.examples(task.eval_split, samples, seed=0)
        scores[name] = evaluate_task(model, tokenizer, task, examples, CARD_EVAL, show_progress)["score"]
    return scores


def general_average(scores: dict[str, float]) -> float:
    return sum(scores[t] for t in GENERAL_TASKS) / len(GENERAL_TASKS)


def write_card(folder: Path, samples: int = 200, show_progress: bool = True) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    card = json.loads((folder / "training.json").read_text())
    card["scores"] = score_model(model, tokenizer, samples, show_progress)
    card["general_average"] = general_average(card["scores"])
    card["card_eval"] = {**CARD_EVAL.model_dump(), "samples_per_task": samples}
    (folder / "card.json").write_text(json.dumps(card, indent=2))
    (folder / "README.md").write_text(render_card(card))
    return card


def render_card(card: dict) -> str:
    recipe = card["recipe"]
    rows = "\n".join(
        f"| `{name}` | {'general' if name in GENERAL_TASKS else 'target'} | {100 * score:.1f} |"
        for name, score in card["scores"].items()
    )
    mixture = ", ".join(f"{name} {weight:g}" for name, weight in recipe.get("mixture", []))
    anneal = ", ".join(f"{name} {weight:g}" for name, weight in recipe.get("anneal_mixture", []))
    loss = "loss on all tokens" if recipe.get("loss_on_prompt") else "loss on answer tokens only"
    phases = ""
    if recipe.get("anneal_examples"):
        minutes = [f"{s / 60:.1f}" for s in card.get("phase_seconds", [])]
        phases = (f"\n- phase 2 (anneal): {recipe['anneal_examples']:,} examples, lr {recipe['anneal_lr']}, cosine; "
                  f"mixture weights {anneal}" + (f"\n- phase minutes: {' + '.join(minutes)}" if minutes else ""))
    return f"""# peftbench micro model

A small llama-architecture causal LM that peftbench pretrains itself on procedurally
generated general skills, so the whole benchmark runs offline on a CPU. Target tasks are
held out of pretraining. Load it with `model: micro` (same code path as any hub model).

- architecture: LlamaForCausalLM, hidden {recipe['hidden_size']}, {recipe['num_layers']} layers,
  {recipe['num_heads']} heads ({recipe['num_kv_heads']} key/value), FFN {recipe['intermediate_size']},
  tied embeddings, context {recipe['max_positions']}
- parameters: {card['parameters']:,}
- tokenizer: byte-level BPE, {recipe['vocab_size']} tokens, trained on micro-world text, digits split
- recipe: `peftbench micro pretrain --out DIR` (seed {recipe['seed']}): {recipe['examples']:,} examples of the
  general-skill mixture (weights: {mixture or 'uniform'}), {loss}, batch {recipe['batch_size']},
  AdamW lr {recipe['lr']}, cosine, warmup {recipe['warmup_steps']}, weight decay {recipe['weight_decay']}{phases}
- training: {card['train_seconds'] / 60:.1f} min on the build machine (2 CPU cores), {card['train_tokens']:,} tokens,
  final loss {card['final_loss']:.3f}

## Base scores

Greedy decoding, {card['card_eval']['samples_per_task']} test examples per task (fewer where the split is smaller);
generation tasks by exact match (code: unit tests in the sandbox), classification by log-likelihood.

| task | kind | score % |
|---|---|---|
{rows}

General-skills average: {100 * card['general_average']:.1f}%.
"""
