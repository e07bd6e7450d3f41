"""Huber (smooth L1) loss."""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.losses.base import Loss
from lossbench.losses.regression import REGRESSION_ONLY, residuals


class HuberLoss(Loss):
    """`0.5 e^2 / beta` if `|e| < beta`, else `|e| - 0.5 beta` (e = p - y), per example (N,).

    The form of Yang et al. (2021)'s `weighted_huber_loss` (smooth L1; `beta -> 0` gives L1).

    Args:
        beta: Transition point (> 0); 1 in their code.
    """

    task_kinds = REGRESSION_ONLY

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.beta = float(beta)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        e = residuals(logits, targets).abs()
        return torch.where(e < self.beta, 0.5 * e.square() / self.beta, e - 0.5 * self.beta)
