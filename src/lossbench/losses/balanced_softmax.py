"""Balanced softmax cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.limits import Limit
from lossbench.losses.base import Loss, counts_tensor
from lossbench.tasks.base import Task


class BalancedSoftmaxLoss(Loss):
    """Balanced softmax (Ren et al., NeurIPS 2020): cross-entropy on `z_c + log n_c`.

    Training with the label prior added makes the plain logits estimate the balanced posterior.
    Equal counts recover cross-entropy (a constant shift leaves softmax unchanged). Counts of zero
    are clamped to 1 so the loss stays finite.
    """

    limits = (Limit(equals="ce", class_counts=(7, 7, 7)),)  # checked by `lossbench check` (lossbench.limits)

    log_counts: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("log_counts", torch.zeros(0))

    def fit(self, task: Task, targets: Tensor) -> None:
        """Store log n_c."""
        class_counts = task.group_counts
        self.log_counts = counts_tensor(class_counts).log().float()

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        if self.log_counts.numel() != logits.shape[1]:
            raise RuntimeError("BalancedSoftmaxLoss.fit(class_counts) must be called before use")
        return F.cross_entropy(logits + self.log_counts.to(logits.dtype), targets, reduction="none")
