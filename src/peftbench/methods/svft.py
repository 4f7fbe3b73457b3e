"""SVFT: singular-vector guided fine-tuning (Lingam et al. 2024).

W' = W + U M V^T, with U, V the (frozen) singular vectors of W and M a sparse trainable
matrix: its diagonal ("plain") or a band around it ("banded"). peft has no SVFT, hence
this file. U and V are not saved: they are recomputed from the base weights at load,
with a fixed sign convention so the same base gives the same basis.
"""

from __future__ import annotations

from typing import Literal, Optional, Union

import torch
from pydantic import Field
from torch import nn

from peftbench.methods.base import InjectedMethod, MethodParams, register_method
from peftbench.methods.surgery import find_modules, replace_module


class SvftParams(MethodParams):
    target_modules: Union[list[str], Literal["all-linear"]] = ["q_proj", "v_proj"]
    pattern: Literal["plain", "banded"] = "banded"
    off_diag: int = Field(2, ge=0, description="band half-width for pattern=banded")
    rank: Optional[int] = Field(None, gt=0, description="singular vectors kept; default: all")


def _band(r: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = zip(*[(i, j) for i in range(r) for j in range(max(0, i - width), min(r, i + width + 1))])
    return torch.tensor(rows), torch.tensor(cols)


class SvftLinear(nn.Module):
    def __init__(self, base: nn.Linear, params: SvftParams):
        super().__init__()
        self.base = base
        weight = base.weight.detach().float()
        u, _, vh = torch.linalg.svd(weight, full_matrices=False)
        r = min(params.rank or vh.shape[0], vh.shape[0])
        u, vh = u[:, :r], vh[:r]
        # Singular vectors are defined up to a joint sign flip; fix it (largest |v| entry > 0)
        # so a reload on the same base rebuilds the same basis.
        signs = torch.sign(vh.gather(1, vh.abs().argmax(dim=1, keepdim=True))).squeeze(1)
        self.register_buffer("u", (u * signs).to(base.weight.dtype), persistent=False)
        self.register_buffer("vh", (vh * signs[:, None]).to(base.weight.dtype), persistent=False)
        rows, cols = _band(r, params.off_diag if params.pattern == "banded" else 0)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.values = nn.Parameter(torch.zeros(len(rows), dtype=base.weight.dtype, device=base.weight.device))

    def sparse_m(self) -> torch.Tensor:
        r = self.vh.shape[0]
        m = torch.zeros(r, r, dtype=self.values.dtype, device=self.values.device)
        return m.index_put((self.rows, self.cols), self.values)

    def delta_weight(self) -> torch.Tensor:
        return self.u @ self.sparse_m() @ self.vh

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x V M^T U^T, never forming the dense d_out x d_in update
        return self.base(x) + ((x @ self.vh.T) @ self.sparse_m().T) @ self.u.T


@register_method
class Svft(InjectedMethod):
    name = "svft"
    family = "reparameterised"
    description = "SVFT: sparse trainable mixing of each weight's singular vectors (Lingam et al. 2024)"
    Params = SvftParams
    mergeable = True

    def inject(self, model, params: SvftParams):
        for name, _ in find_modules(model, params.target_modules):
            replace_module(model, name, lambda base: SvftLinear(base, params))

    def merge(self, model):
        for name, module in list(model.named_modules()):
            if isinstance(module, SvftLinear):
                with torch.no_grad():
                    module.base.weight += module.delta_weight()
                replace_module(model, name, lambda m: m.base)
        del model._peftbench_params
        return model

    def reference_trainable_count(self, model):
        return sum(m.rows.numel() for m in model.modules() if isinstance(m, SvftLinear))
