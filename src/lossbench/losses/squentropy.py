"""Squentropy: cross-entropy plus the square loss of the incorrect classes."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lossbench.losses.base import Loss


class SquentropyLoss(Loss):
    """Squentropy (Hui, Belkin & Wright, ICML 2023, "Cut your losses with squentropy").

    `CE(z, y) + 1/(C - 1) * sum_{c != y} z_c^2`: cross-entropy plus the average square loss over the
    incorrect classes, whose regression target is 0 (the true class's logit gets no square term). It
    acts on the raw logits, so it pulls non-target logits toward 0, which the paper reports improves
    calibration over cross-entropy. No hyper-parameters, as in the paper.
    """

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        num_classes = logits.shape[1]
        wrong = 1.0 - F.one_hot(targets, num_classes).to(logits.dtype)
        square = (logits.square() * wrong).sum(dim=1) / max(num_classes - 1, 1)
        return F.cross_entropy(logits, targets, reduction="none") + square
