"""Class-dependent temperature loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.limits import Limit
from lossbench.losses.base import Loss, counts_tensor
from lossbench.tasks.base import Task


class CDTLoss(Loss):
    """Class-dependent temperatures (Ye et al., 2020, arXiv:2001.01385): CE on `z_c / a_c`.

    Temperatures `a_c = (n_max / n_c)^gamma`: the most frequent class keeps temperature 1 and rarer
    classes get larger temperatures (smaller training logits), which counteracts the feature deviation
    of minority classes at test time. The plain logits are used at test time. This is the
    multiplicative part of the VS loss (`vs` with `tau=0`). `gamma=0` is cross-entropy. Ye et al. tune
    `gamma` per dataset; 0.2 is a mid-range default. Counts of zero are clamped to 1.

    Args:
        gamma: Temperature exponent (>= 0).
    """

    limits = (Limit(equals="ce", params={"gamma": 0.0}),)  # checked by `lossbench check` (lossbench.limits)

    temperature: Tensor

    def __init__(self, gamma: float = 0.2) -> None:
        super().__init__()
        if not gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.register_buffer("temperature", torch.zeros(0))

    def fit(self, task: Task, targets: Tensor) -> None:
        """Compute the temperatures `(n_max / n_c)^gamma`."""
        class_counts = task.group_counts
        counts = counts_tensor(class_counts)
        self.temperature = ((counts.max() / counts) ** self.gamma).float()

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        if self.temperature.numel() != logits.shape[1]:
            raise RuntimeError("CDTLoss.fit(class_counts) must be called before use")
        return F.cross_entropy(logits / self.temperature.to(logits.dtype), targets, reduction="none")
