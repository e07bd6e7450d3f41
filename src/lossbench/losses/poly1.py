"""Poly-1 loss."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lossbench.limits import Limit
from lossbench.losses.base import Loss


class Poly1Loss(Loss):
    """Poly-1 loss (Leng et al., ICLR 2022): `CE + epsilon * (1 - p_t)`, with `p_t = softmax(z)_y`.

    The first polynomial coefficient of cross-entropy's Taylor expansion in `(1 - p_t)` is perturbed by
    `epsilon`, as in the paper's listing (no label smoothing). `epsilon=0` is cross-entropy; the
    paper's default is 1 (it also uses negative values, down to -1, where the loss stays >= 0).

    Args:
        epsilon: Perturbation of the first polynomial coefficient (>= -1).
    """

    limits = (Limit(equals="ce", params={"epsilon": 0.0}),)  # checked by `lossbench check` (lossbench.limits)

    def __init__(self, epsilon: float = 1.0) -> None:
        super().__init__()
        if not epsilon >= -1:
            raise ValueError(f"epsilon must be >= -1, got {epsilon}")
        self.epsilon = float(epsilon)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        ce = F.cross_entropy(logits, targets, reduction="none")
        return ce + self.epsilon * (1.0 - (-ce).exp())
