"""Focal-R (Yang et al., ICML 2021): L1 or squared error scaled by a function of the error."""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.losses.base import Loss
from lossbench.losses.regression import REGRESSION_ONLY, residuals


class FocalRegressionLoss(Loss):
    """`base(e) * f(beta |e|)^gamma` per example, with f = 2 sigmoid - 1 (default) or tanh.

    As in Yang et al.'s `weighted_focal_{l1,mse}_loss` (github YyzHarry/imbalanced-regression):
    `base` is `|e|` (focal_l1) or `e^2` (focal_mse), `e = p - y`; the factor is not detached, as there.

    Args:
        base: ``"l1"`` or ``"mse"``.
        beta: Scale of the error inside the activation (> 0); 0.2 in their code.
        gamma: Exponent of the factor (>= 0); 1 in their code; 0 recovers the base loss.
        activate: ``"sigmoid"`` (2 sigmoid(x) - 1) or ``"tanh"``.
    """

    task_kinds = REGRESSION_ONLY

    def __init__(
        self, base: str = "l1", beta: float = 0.2, gamma: float = 1.0, activate: str = "sigmoid"
    ) -> None:
        super().__init__()
        if base not in ("l1", "mse"):
            raise ValueError(f"base must be l1 or mse, got {base!r}")
        if activate not in ("sigmoid", "tanh"):
            raise ValueError(f"activate must be sigmoid or tanh, got {activate!r}")
        if not beta > 0 or not gamma >= 0:
            raise ValueError(f"need beta > 0 and gamma >= 0, got {beta}, {gamma}")
        self.base, self.beta, self.gamma, self.activate = base, float(beta), float(gamma), activate

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        e = residuals(logits, targets)
        x = self.beta * e.abs()
        factor = torch.tanh(x) if self.activate == "tanh" else 2 * torch.sigmoid(x) - 1
        return (e.abs() if self.base == "l1" else e.square()) * factor**self.gamma
