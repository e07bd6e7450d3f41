"""Squared error."""

from __future__ import annotations

from torch import Tensor

from lossbench.losses.base import Loss
from lossbench.losses.regression import REGRESSION_ONLY, residuals


class MSELoss(Loss):
    """Per-example squared error `(p - y)^2` of predictions (N, 1) and float targets (N,)."""

    task_kinds = REGRESSION_ONLY

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        return residuals(logits, targets).square()
