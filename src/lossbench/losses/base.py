"""The loss contract: logits and targets in, one loss per example out."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from lossbench.limits import Limit


class Loss(nn.Module, metaclass=ABCMeta):
    """Maps logits (N, C) and integer targets (N,) to per-example losses (N,). Never reduces.

    Reduction and any per-class or per-example weighting belong to a `Weighting`, so every loss
    composes with every recipe. Losses that depend on the training label distribution (LDAM,
    balanced softmax, ...) read it in `fit(class_counts)`, which is called once before training.

    `logit_scale` is the factor the loss applies to the model's outputs before its softmax (LDAM's
    `s` on cosine logits); evaluation multiplies the logits by it, so NLL and ECE measure the
    distribution the model was trained to predict. Accuracy metrics are unaffected (scale > 0).
    """

    logit_scale: float = 1.0
    # Declared limits ("with gamma=0 this is `ce`"), verified by `lossbench check` (see lossbench.limits).
    limits: ClassVar[tuple[Limit, ...]] = ()

    def fit(self, class_counts: Sequence[int]) -> None:
        """See the training-set class counts (length C). Default: nothing to do."""

    @abstractmethod
    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""


def counts_tensor(class_counts: Sequence[int]) -> Tensor:
    """Class counts as float64, clamped to >= 1 so that classes absent from training stay finite."""
    counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
    if counts.ndim != 1 or len(counts) == 0 or (counts < 0).any():
        raise ValueError(
            f"class_counts must be a non-empty list of non-negative counts, got {list(class_counts)}"
        )
    return counts.clamp(min=1.0)
