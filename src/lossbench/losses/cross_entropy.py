"""Softmax cross-entropy."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lossbench.losses.base import Loss


class CrossEntropyLoss(Loss):
    """Per-example softmax cross-entropy, `-log softmax(z)_y`; the baseline every limit reduces to."""

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        return F.cross_entropy(logits, targets, reduction="none")
