"""Absolute error."""

from __future__ import annotations

from torch import Tensor

from lossbench.losses.base import Loss
from lossbench.losses.regression import REGRESSION_ONLY, residuals


class L1Loss(Loss):
    """Per-example absolute error `|p - y|` of predictions (N, 1) and float targets (N,)."""

    task_kinds = REGRESSION_ONLY

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        return residuals(logits, targets).abs()
