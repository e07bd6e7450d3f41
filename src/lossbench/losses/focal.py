"""Softmax focal loss."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lossbench.limits import Limit
from lossbench.losses.base import Loss


class FocalLoss(Loss):
    """Focal loss (Lin et al., 2017), softmax form: `(1 - p_t)^gamma * CE` with `p_t = exp(-CE)`.

    This is the multi-class form used by the LDAM-DRW reference code (`focal_loss(ce, gamma)`);
    the sigmoid form for detection is `sigmoid_focal`. `gamma=0` recovers cross-entropy.

    Args:
        gamma: Focusing parameter (>= 0).
    """

    limits = (Limit(equals="ce", params={"gamma": 0.0}),)  # checked by `lossbench check` (lossbench.limits)

    def __init__(self, gamma: float = 2.0) -> None:
        super().__init__()
        if not gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        ce = F.cross_entropy(logits, targets, reduction="none")
        if self.gamma == 0:
            return ce
        return (1.0 - (-ce).exp()).clamp(min=0.0) ** self.gamma * ce
