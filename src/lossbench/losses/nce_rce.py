"""Normalized cross-entropy plus reverse cross-entropy (an active-passive loss)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lossbench.losses.base import Loss
from lossbench.losses.robust import reverse_cross_entropy


class NCERCELoss(Loss):
    """NCE+RCE (Ma et al., ICML 2020): `alpha * NCE + beta * RCE`.

    `NCE = log p_y / sum_c log p_c` (cross-entropy normalised by the sum of the cross-entropies
    against every label; in [0, 1]), computed from `log_softmax` without clamping as in the reference
    `NormalizedCrossEntropy`; `RCE` is the clipped reverse cross-entropy of `sce`
    (`-log(1e-4) * sum_{c != y} p_c`, probabilities clamped to [1e-7, 1]), as in the reference
    `NCEandRCE`. Defaults are the reference's CIFAR-10 values (`alpha=1, beta=1`); CIFAR-100 uses
    `alpha=10, beta=0.1`.

    Args:
        alpha: Weight of the normalized cross-entropy (>= 0).
        beta: Weight of the reverse cross-entropy (>= 0).
    """

    def __init__(self, alpha: float = 1.0, beta: float = 1.0) -> None:
        super().__init__()
        if not (alpha >= 0 and beta >= 0):
            raise ValueError(f"alpha and beta must be >= 0, got alpha={alpha}, beta={beta}")
        self.alpha, self.beta = float(alpha), float(beta)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        logp = F.log_softmax(logits, dim=1)
        nce = logp.gather(1, targets[:, None]).squeeze(1) / logp.sum(dim=1)
        return self.alpha * nce + self.beta * reverse_cross_entropy(logits, targets)
