"""How far fine-tuning moved the model's representations and weights, beside the spectral
profile (PEFT-Arena's further diagnostics of the update):

- linear CKA (Kornblith et al. 2019) between the base and the tuned model's hidden states on
  the same prompts, per layer: 1 = the same geometry up to rotation and scale;
- orthogonal Procrustes distance (Ding et al. 2021) between them, after centring and scaling
  to unit norm: sqrt(2 - 2 ||X^T Y||_*), 0 = identical up to rotation, at most sqrt(2);
- Gram distortion: how much the prompts' pairwise similarities changed,
  ||K_X - K_Y||_F / ||K_X||_F with K = X X^T of the centred, unit-norm states;
- relative spectral change of each adapted weight, ||s(W_ft) - s(W_pre)||_2 / ||s(W_pre)||_2
  over the singular values s (the paper's "relative CSD" could not be checked against its
  definition offline; this is the relative change of the singular spectrum, stated as ours).

A prompt's representation at a layer is its last token's hidden state: what the next token
is predicted from.
"""

from __future__ import annotations

from typing import Sequence

import torch


def _centred_unit(x: torch.Tensor) -> torch.Tensor:
    x = x.double() - x.double().mean(dim=0, keepdim=True)
    norm = torch.linalg.norm(x)
    return x / norm if norm > 0 else x


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two (examples x features) matrices over the same examples."""
    x, y = _centred_unit(x), _centred_unit(y)
    cross = torch.linalg.norm(y.T @ x) ** 2
    denominator = torch.linalg.norm(x.T @ x) * torch.linalg.norm(y.T @ y)
    return float(cross / denominator) if denominator > 0 else 0.0


def procrustes_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = _centred_unit(x), _centred_unit(y)
    nuclear = torch.linalg.matrix_norm(x.T @ y, ord="nuc")
    return float(torch.sqrt(torch.clamp(2 - 2 * nuclear, min=0.0)))


def gram_distortion(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = _centred_unit(x), _centred_unit(y)
    gram_x, gram_y = x @ x.T, y @ y.T
    base = torch.linalg.norm(gram_x)
    return float(torch.linalg.norm(gram_x - gram_y) / base) if base > 0 else 0.0


def relative_spectral_change(w_pre: torch.Tensor, w_ft: torch.Tensor) -> float:
    s_pre = torch.linalg.svdvals(w_pre.detach().double())
    s_ft = torch.linalg.svdvals(w_ft.detach().double())
    return float(torch.linalg.vector_norm(s_ft - s_pre) / torch.linalg.vector_norm(s_pre))


@torch.no_grad()
def last_token_states(model, tokenizer, prompts: Sequence[str]) -> list[torch.Tensor]:
    """Per layer (embeddings first), a (prompts x hidden) matrix of each prompt's last-token
    state; one prompt at a time, so no padding enters a state."""
    from peftbench.prompting import encode_prompt

    device = next(model.parameters()).device
    rows = []
    for prompt in prompts:
        out = model(input_ids=torch.tensor([encode_prompt(tokenizer, prompt)], device=device), output_hidden_states=True)
        rows.append([h[0, -1].float().cpu() for h in out.hidden_states])
    return [torch.stack(layer) for layer in zip(*rows)]


def compare_representations(base, tuned, tokenizer, prompts: Sequence[str]) -> dict:
    """CKA, Procrustes distance and Gram distortion per layer and their means over layers
    (the embedding layer left out of the means: no method but full tunes it)."""
    base_states = last_token_states(base, tokenizer, prompts)
    tuned_states = last_token_states(tuned, tokenizer, prompts)
    per_layer = [{"layer": i, "cka": linear_cka(x, y), "procrustes": procrustes_distance(x, y),
                  "gram_distortion": gram_distortion(x, y)} for i, (x, y) in enumerate(zip(base_states, tuned_states))]
    blocks = per_layer[1:] or per_layer
    mean = {key: sum(layer[key] for layer in blocks) / len(blocks) for key in ("cka", "procrustes", "gram_distortion")}
    return {"prompts": len(prompts), "per_layer": per_layer, "mean": mean}
