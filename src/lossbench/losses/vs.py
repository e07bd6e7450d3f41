"""Vector-scaling loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.limits import Limit
from lossbench.losses.base import Loss, counts_tensor
from lossbench.tasks.base import Task


class VSLoss(Loss):
    """Vector-scaling loss (Kini et al., NeurIPS 2021): CE on `z_c * (n_c / n_max)^gamma + tau * log pi_c`.

    Follows the authors' reference `VSLoss` (orparask/VS-Loss): there the multiplicative factor is
    written as a division, `z_c / Delta_c` with `Delta_c = n_c^-gamma / min_k n_k^-gamma =
    (n_max / n_c)^gamma`, which is the same as multiplying by `(n_c / n_max)^gamma`; the additive
    term is `iota_c = tau * log pi_c` with `pi_c = n_c / sum(n)`. So the most frequent class keeps its
    logit scale and rarer classes get smaller logits (a larger margin is needed for them).
    `gamma=0, tau=0` is cross-entropy; `gamma=0` alone is logit adjustment; `tau=0` alone is CDT.
    Defaults are the reference's (`gamma=0.3, tau=1.0`). Counts of zero are clamped to 1.

    Args:
        gamma: Exponent of the multiplicative (temperature) adjustment (>= 0).
        tau: Scale of the additive log-prior adjustment (>= 0).
    """

    limits = (Limit(equals="ce", params={"gamma": 0.0, "tau": 0.0}),)  # checked by `lossbench check`

    scale: Tensor
    shift: Tensor

    def __init__(self, gamma: float = 0.3, tau: float = 1.0) -> None:
        super().__init__()
        if not gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        if not tau >= 0:
            raise ValueError(f"tau must be >= 0, got {tau}")
        self.gamma, self.tau = float(gamma), float(tau)
        self.register_buffer("scale", torch.zeros(0))
        self.register_buffer("shift", torch.zeros(0))

    def fit(self, task: Task, targets: Tensor) -> None:
        """Compute the per-class scale `(n_c / n_max)^gamma` and shift `tau * log pi_c`."""
        class_counts = task.group_counts
        counts = counts_tensor(class_counts)
        self.scale = ((counts / counts.max()) ** self.gamma).float()
        self.shift = (self.tau * (counts / counts.sum()).log()).float()

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        if self.scale.numel() != logits.shape[1]:
            raise RuntimeError("VSLoss.fit(class_counts) must be called before use")
        adjusted = logits * self.scale.to(logits.dtype) + self.shift.to(logits.dtype)
        return F.cross_entropy(adjusted, targets, reduction="none")
