"""Logit-adjusted cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.limits import Limit
from lossbench.losses.base import Loss, counts_tensor
from lossbench.tasks.base import Task


class LogitAdjustedLoss(Loss):
    """Logit-adjusted loss (Menon et al., ICLR 2021): cross-entropy on `z_c + tau * log pi_c`.

    `pi_c = n_c / sum(n)` are the training class frequencies, as in the authors' reference code
    (google-research/logit_adjustment). `tau=1` equals balanced softmax (`log n_c` and `log pi_c`
    differ by a constant, which softmax ignores); `tau=0` is cross-entropy. Counts of zero are
    clamped to 1 so that the loss stays finite.

    Args:
        tau: Scale of the log-prior adjustment (>= 0).
    """

    limits = (
        Limit(equals="ce", params={"tau": 0.0}),
        Limit(equals="balanced_softmax", params={"tau": 1.0}),
    )  # checked by `lossbench check` (lossbench.limits)

    log_prior: Tensor

    def __init__(self, tau: float = 1.0) -> None:
        super().__init__()
        if not tau >= 0:
            raise ValueError(f"tau must be >= 0, got {tau}")
        self.tau = float(tau)
        self.register_buffer("log_prior", torch.zeros(0))

    def fit(self, task: Task, targets: Tensor) -> None:
        """Store log pi_c."""
        class_counts = task.group_counts
        counts = counts_tensor(class_counts)
        self.log_prior = (counts / counts.sum()).log().float()

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        if self.log_prior.numel() != logits.shape[1]:
            raise RuntimeError("LogitAdjustedLoss.fit(class_counts) must be called before use")
        adjusted = logits + self.tau * self.log_prior.to(logits.dtype)
        return F.cross_entropy(adjusted, targets, reduction="none")
