"""Symmetric cross-entropy."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lossbench.losses.base import Loss
from lossbench.losses.robust import reverse_cross_entropy


class SCELoss(Loss):
    """Symmetric cross-entropy (Wang et al., ICCV 2019): `alpha * CE + beta * RCE`.

    `RCE = -log(1e-4) * sum_{c != y} p_c` (log 0 clipped to A = log 1e-4, probabilities clamped to
    [1e-7, 1]) exactly as in the authors' and the APL reference code (`SCELoss`). Defaults are the
    CIFAR-10 values of both (`alpha=0.1, beta=1.0`); CIFAR-100 uses `alpha=6, beta=0.1`.
    `beta=0, alpha=1` is cross-entropy.

    Args:
        alpha: Weight of cross-entropy (>= 0).
        beta: Weight of reverse cross-entropy (>= 0).
    """

    def __init__(self, alpha: float = 0.1, beta: float = 1.0) -> None:
        super().__init__()
        if not (alpha >= 0 and beta >= 0):
            raise ValueError(f"alpha and beta must be >= 0, got alpha={alpha}, beta={beta}")
        self.alpha, self.beta = float(alpha), float(beta)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        ce = F.cross_entropy(logits, targets, reduction="none")
        return self.alpha * ce + self.beta * reverse_cross_entropy(logits, targets)
