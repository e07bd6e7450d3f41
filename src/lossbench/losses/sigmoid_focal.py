"""Sigmoid focal loss (multi-label)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.losses.base import Loss
from lossbench.losses.multilabel import multilabel_targets
from lossbench.tasks.base import CLASSIFICATION, MULTILABEL


class SigmoidFocalLoss(Loss):
    """Sigmoid focal loss (Lin et al., ICCV 2017), torchvision's convention, summed over classes.

    Per class: `alpha_t * (1 - p_t)^gamma * BCE(z_c, t_c)` with `p = sigmoid(z_c)`,
    `p_t = p t + (1 - p)(1 - t)` and `alpha_t = alpha t + (1 - alpha)(1 - t)`; a negative `alpha`
    disables the alpha balancing (torchvision's `sigmoid_focal_loss`). `gamma=0, alpha<0` is `bce`.
    Defaults are the paper's and torchvision's (`alpha=0.25, gamma=2`). Targets as in `bce`.

    Args:
        alpha: Weight of positives in [0, 1]; negative disables balancing.
        gamma: Focusing parameter (>= 0).
    """

    task_kinds = (CLASSIFICATION, MULTILABEL)

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        if not alpha <= 1:
            raise ValueError(f"alpha must be <= 1 (negative disables it), got {alpha}")
        if not gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.alpha, self.gamma = float(alpha), float(gamma)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        t = multilabel_targets(targets, logits)
        p = torch.sigmoid(logits)
        ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
        p_t = p * t + (1.0 - p) * (1.0 - t)
        loss = ce * (1.0 - p_t) ** self.gamma
        if self.alpha >= 0:
            loss = (self.alpha * t + (1.0 - self.alpha) * (1.0 - t)) * loss
        return loss.sum(dim=1)
