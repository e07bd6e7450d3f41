"""Cross-entropy with label smoothing."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lossbench.limits import Limit
from lossbench.losses.base import Loss


class LabelSmoothingLoss(Loss):
    """Cross-entropy against smoothed targets (Szegedy et al., CVPR 2016; Müller et al., NeurIPS 2019).

    Convention (references differ): PyTorch's. The target distribution is
    `(1 - epsilon) * onehot(y) + epsilon / C`, i.e. epsilon is spread uniformly over all C classes,
    the target included (some papers spread it over the C - 1 other classes only). The per-example
    value is `(1 - epsilon) * CE + epsilon * mean_c(-log p_c)`. `epsilon=0` recovers cross-entropy.

    Args:
        epsilon: Smoothing mass, in [0, 1].
    """

    limits = (Limit(equals="ce", params={"epsilon": 0.0}),)  # checked by `lossbench check` (lossbench.limits)

    def __init__(self, epsilon: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.epsilon = float(epsilon)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        return F.cross_entropy(logits, targets, reduction="none", label_smoothing=self.epsilon)
