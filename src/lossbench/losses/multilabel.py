"""Target handling shared by the multi-label (per-class sigmoid) losses.

Multi-label losses take targets in {0, 1}^(N x C). They also accept integer class targets (N,),
one-hot encoded here, so that every multi-label loss composes with every single-label dataset
and with the `Loss` contract. Their per-example value is the sum over the C binary terms, so the
mean over examples (what the `none` weighting computes) is "sum over classes, then mean over
samples".
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def multilabel_targets(targets: Tensor, logits: Tensor) -> Tensor:
    """Targets as a {0, 1} matrix (N, C) in the dtype of `logits`.

    Args:
        targets: Integer class indices (N,), or a binary matrix (N, C).
        logits: The logits (N, C) the targets belong to (gives C, dtype and device).

    Raises:
        ValueError: If the shape of `targets` is neither (N,) nor (N, C).
    """
    n, num_classes = logits.shape
    if targets.ndim == 1 and targets.shape[0] == n:
        return F.one_hot(targets.long(), num_classes).to(logits.dtype)
    if targets.shape == (n, num_classes):
        return targets.to(logits.dtype)
    raise ValueError(
        f"targets must be class indices ({n},) or a binary matrix ({n}, {num_classes}), "
        f"got shape {tuple(targets.shape)}"
    )
