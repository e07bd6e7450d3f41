"""Dual focal loss."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lossbench.limits import Limit
from lossbench.losses.base import Loss


class DualFocalLoss(Loss):
    """Dual focal loss (Tao, Dong & Xu, ICML 2023): `-(1 - p_y + p_j)^gamma * log p_y`.

    `p_j` follows the authors' reference code (Linwei94/ICML2023-DualFocalLoss): the largest softmax
    probability strictly smaller than `p_y` (0 when there is none). When the target is the top class
    this is the runner-up, the paper's "largest non-target probability"; when it is not, it is the
    largest probability below the target's. The modulating factor carries gradient, as in the
    reference. `gamma=0` is cross-entropy; the default 5 is the paper's recommended value (its
    Table 13).

    Args:
        gamma: Focusing parameter (>= 0).
    """

    limits = (Limit(equals="ce", params={"gamma": 0.0}),)  # checked by `lossbench check` (lossbench.limits)

    def __init__(self, gamma: float = 5.0) -> None:
        super().__init__()
        if not gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        logp = F.log_softmax(logits, dim=1)
        p = logp.exp()
        logp_y = logp.gather(1, targets[:, None]).squeeze(1)
        p_y = logp_y.exp()
        p_j = (p * (p < p_y[:, None])).amax(dim=1)
        return -((1.0 - p_y + p_j) ** self.gamma) * logp_y
