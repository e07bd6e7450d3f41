"""Binary cross-entropy over per-class sigmoids."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lossbench.losses.base import Loss
from lossbench.losses.multilabel import multilabel_targets
from lossbench.tasks.base import CLASSIFICATION, MULTILABEL


class BCELoss(Loss):
    """Multi-label binary cross-entropy: `sum_c BCE(sigmoid(z_c), t_c)` per example.

    Each class is an independent binary problem (one sigmoid per class, no softmax). Targets are a
    {0, 1} matrix (N, C), or class indices (N,) that are one-hot encoded; the per-example value sums
    the C terms, so the mean over examples is "sum over classes, then mean over samples" (PyTorch's
    `BCEWithLogitsLoss(reduction="mean")` would instead also divide by C).
    """

    task_kinds = (CLASSIFICATION, MULTILABEL)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        t = multilabel_targets(targets, logits)
        return F.binary_cross_entropy_with_logits(logits, t, reduction="none").sum(dim=1)
