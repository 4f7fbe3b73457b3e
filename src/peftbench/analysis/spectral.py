"""Spectral retention/adaptation profile of a weight update (PEFT-Arena's geometry view).

For each adapted 2-D weight, with the pretrained weight W_pre = U S V^T (float32, SVD):

- retention  dP(i) = |u_i^T W_ft v_i - s_i|: how much the update moved the i-th singular
  value along the pretrained singular directions (0 = untouched);
- adaptation E(i)  = ||(W_ft - W_pre) v_i||_2: how much the update acts on the i-th input
  direction;
- fluctuation of a profile x = mean_i |x_i - MA_5(x)_i| (centred moving average of width
  5, reflect padding): lower is smoother; smoother profiles go with better retention;
- stable rank of the update ||dW||_F^2 / ||dW||_2^2;
- intruder dimensions: among the top-10 left singular vectors of W_ft, those whose best
  |cosine| with any left singular vector of W_pre is below 0.5 (Shuttleworth et al.);
- alignment |cos(v_pre_i, v_ft_i)| of the i-th right singular vectors (the OFT view: a
  rotation keeps singular values but turns the singular vectors).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

INTRUDER_TOP_K = 10
INTRUDER_THRESHOLD = 0.5
SMOOTHING_WIDTH = 5
# embedding tables and the LM head are left out: their SVD is costly on a real vocabulary
# (128k x 4096) and PEFT methods do not adapt them; full fine-tuning's other weights still are.
SKIPPED_NAME_PARTS = ("embed", "lm_head", "wte", "wpe")


@dataclass
class LayerSpectrum:
    name: str
    shape: tuple[int, int]
    retention: list[float]  # dP(i)
    adaptation: list[float]  # E(i)
    alignment: list[float]  # |cos(v_pre_i, v_ft_i)|
    retention_fluctuation: float
    adaptation_fluctuation: float
    stable_rank: Optional[float]  # None when the update is exactly zero
    intruder_dimensions: int
    update_norm: float  # ||dW||_F
    spectral_change: float = 0.0  # ||s(W_ft) - s(W_pre)|| / ||s(W_pre)||: how much the singular values moved

    def summary(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("retention", "adaptation", "alignment")}


def fluctuation(profile: torch.Tensor, width: int = SMOOTHING_WIDTH) -> float:
    """mean_i |x_i - MA_width(x)_i| with a centred moving average and reflect padding."""
    x = profile.double().flatten()
    if x.numel() < 2:
        return 0.0
    half = min(width // 2, x.numel() - 1)  # reflect padding needs fewer pad values than elements
    padded = F.pad(x.view(1, 1, -1), (half, half), mode="reflect").view(-1)
    smooth = padded.unfold(0, 2 * half + 1, 1).mean(dim=1)
    return float((x - smooth).abs().mean())


def stable_rank(update: torch.Tensor) -> Optional[float]:
    """||dW||_F^2 / ||dW||_2^2: 1 for a rank-1 update, up to rank(dW) when the energy is spread."""
    spectral = torch.linalg.matrix_norm(update, ord=2)
    if spectral == 0:
        return None
    return float(torch.linalg.matrix_norm(update, ord="fro") ** 2 / spectral**2)


def intruder_dimensions(u_pre: torch.Tensor, u_ft: torch.Tensor, top_k: int = INTRUDER_TOP_K,
                        threshold: float = INTRUDER_THRESHOLD) -> int:
    """How many of W_ft's top-k left singular vectors have no pretrained counterpart
    (best |cosine| with every pretrained left singular vector below `threshold`)."""
    similarity = (u_ft[:, :top_k].T @ u_pre).abs()  # unit vectors: |cosine| is |dot product|
    return int((similarity.max(dim=1).values < threshold).sum())


def layer_spectrum(name: str, w_pre: torch.Tensor, w_ft: torch.Tensor) -> LayerSpectrum:
    w_pre, w_ft = w_pre.detach().float(), w_ft.detach().float()
    update = w_ft - w_pre
    u_pre, s_pre, vh_pre = torch.linalg.svd(w_pre, full_matrices=False)
    u_ft, s_ft, vh_ft = torch.linalg.svd(w_ft, full_matrices=False)
    # u_i^T W_ft v_i for every i at once: the diagonal of U^T W_ft V
    along = ((u_pre.T @ w_ft) * vh_pre).sum(dim=1)
    retention = (along - s_pre).abs()
    adaptation = torch.linalg.vector_norm(update @ vh_pre.T, dim=0)
    alignment = (vh_pre * vh_ft).sum(dim=1).abs()
    return LayerSpectrum(
        name=name, shape=tuple(w_pre.shape), retention=retention.tolist(), adaptation=adaptation.tolist(),
        alignment=alignment.tolist(), retention_fluctuation=fluctuation(retention),
        adaptation_fluctuation=fluctuation(adaptation), stable_rank=stable_rank(update),
        intruder_dimensions=intruder_dimensions(u_pre, u_ft), update_norm=float(torch.linalg.norm(update)),
        spectral_change=float(torch.linalg.vector_norm(s_ft - s_pre) / torch.linalg.vector_norm(s_pre)),
    )


def adapted_weights(base: nn.Module, tuned: nn.Module) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, W_pre, W_ft) for every 2-D weight the update changed (same names in both models)."""
    base_state = base.state_dict()
    for name, w_ft in tuned.state_dict().items():
        w_pre = base_state.get(name)
        if w_pre is None or w_ft.dim() != 2 or not w_ft.is_floating_point():
            continue
        if any(part in name for part in SKIPPED_NAME_PARTS):
            continue
        if not torch.equal(w_pre.to(w_ft.dtype), w_ft):
            yield name, w_pre, w_ft


def model_spectra(base: nn.Module, tuned: nn.Module) -> list[LayerSpectrum]:
    return [layer_spectrum(name, w_pre, w_ft) for name, w_pre, w_ft in adapted_weights(base, tuned)]


def _mean(values: Iterable[Optional[float]]) -> Optional[float]:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def summarise(layers: list[LayerSpectrum]) -> dict:
    """Per-model means of the per-layer figures (what the report tabulates)."""
    return {
        "layers": len(layers),
        "retention_fluctuation": _mean(l.retention_fluctuation for l in layers),
        "adaptation_fluctuation": _mean(l.adaptation_fluctuation for l in layers),
        "stable_rank": _mean(l.stable_rank for l in layers),
        "intruder_dimensions": _mean(l.intruder_dimensions for l in layers),
        "mean_retention": _mean(_mean(l.retention) for l in layers),
        "mean_adaptation": _mean(_mean(l.adaptation) for l in layers),
        "mean_alignment": _mean(_mean(l.alignment) for l in layers),
        "spectral_change": _mean(l.spectral_change for l in layers),
    }


def mean_profile(layers: list[LayerSpectrum], key: str, points: int = 100) -> list[float]:
    """A profile averaged over layers on a common relative index (i / rank in [0, 1]), so
    layers of different shapes can be drawn as one curve per method."""
    if not layers:
        return []
    curves = []
    for layer in layers:
        x = torch.tensor(getattr(layer, key), dtype=torch.float64).view(1, 1, -1)
        curves.append(F.interpolate(x, size=points, mode="linear", align_corners=True).view(-1))
    return torch.stack(curves).mean(dim=0).tolist()
