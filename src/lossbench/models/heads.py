"""Classifier heads: linear, or cosine (`normed`) as in the LDAM-DRW reference."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HEADS = ("linear", "normed")


class NormedLinear(nn.Module):
    """Cosine classifier: logits `cos(x, w_c)` in [-1, 1] (Cao et al. 2019, `NormedLinear`).

    Weights have shape (in_features, out_features) and are initialised as in the reference
    (uniform in [-1, 1], each column renormalised to unit norm). LDAM scales these logits by `s`.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        with torch.no_grad():
            self.weight.uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)

    def forward(self, x: Tensor) -> Tensor:
        """Cosine similarities (N, out_features)."""
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=0)


def check_head(kind: str) -> None:
    """Raise `ValueError` unless `kind` is a known head (models call it before building anything)."""
    if kind not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {kind!r}")


def make_head(kind: str, in_features: int, num_classes: int) -> nn.Module:
    """A `linear` or `normed` (cosine) head."""
    check_head(kind)
    return nn.Linear(in_features, num_classes) if kind == "linear" else NormedLinear(in_features, num_classes)
