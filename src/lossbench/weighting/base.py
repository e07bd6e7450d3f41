"""The weighting contract: per-example losses in, one scalar out."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from lossbench.limits import Limit


class Weighting(nn.Module, metaclass=ABCMeta):
    """Reduces per-example losses (N,) to a scalar; `fit` sees training-set class counts once.

    The loop calls `on_epoch_start(epoch)` before each epoch (deferred recipes switch there) and
    `forward(losses, targets, logits, features)` on every batch; most recipes read only `losses`
    and `targets`. Learnable parameters, if any, are added to the optimizer by the loop.
    """

    # Declared limits ("with power=0 this is `none`"), verified by `lossbench check` (lossbench.limits).
    limits: ClassVar[tuple[Limit, ...]] = ()

    def fit(self, class_counts: Sequence[int]) -> None:
        """See the training-set class counts (length C). Default: nothing to do."""

    def on_epoch_start(self, epoch: int) -> None:
        """Called with the 0-based epoch before it starts. Default: nothing to do."""

    @abstractmethod
    def forward(self, losses: Tensor, targets: Tensor, logits: Tensor, features: Tensor) -> Tensor:
        """The scalar training objective."""


class ClassWeighting(Weighting):
    """Weighted mean of per-example losses with one weight per class.

    Convention (one choice for every loss): PyTorch's, `sum_i w_{y_i} l_i / sum_i w_{y_i}`, the
    reduction `F.cross_entropy(weight=w)` uses and the LDAM-DRW reference relies on. Weights are
    normalised to sum to C (Cui et al., 2019), so constant losses `c` map to `c` and uniform weights
    give the plain mean. Subclasses define `compute_weights(counts)`; `target_weights` holds them after
    `fit`, and `active` says whether they are in force (deferred recipes start inactive).
    """

    target_weights: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("target_weights", torch.zeros(0))
        self.active = True

    @abstractmethod
    def compute_weights(self, counts: Tensor) -> Tensor:
        """Un-normalised class weights (C,) from float64 counts."""

    def fit(self, class_counts: Sequence[int]) -> None:
        """Compute the class weights, normalised to sum to C."""
        counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
        if counts.ndim != 1 or len(counts) == 0 or (counts < 0).any():
            raise ValueError(f"class_counts must be non-negative, got {list(class_counts)}")
        w = self.compute_weights(counts.clamp(min=1.0))
        self.target_weights = (w * len(w) / w.sum()).float()

    def forward(self, losses: Tensor, targets: Tensor, logits: Tensor, features: Tensor) -> Tensor:
        """Weighted mean of `losses` by the class weights of `targets` (plain mean while inactive)."""
        if not self.active:
            return losses.mean()
        if self.target_weights.numel() == 0:
            raise RuntimeError(f"{type(self).__name__}.fit(class_counts) must be called before use")
        w = self.target_weights.to(losses.dtype)[targets]
        return (w * losses).sum() / w.sum()


def effective_number_weights(counts: Tensor, beta: float) -> Tensor:
    """Class-balanced weights of Cui et al. (2019): `(1 - beta) / (1 - beta^n_c)` (un-normalised)."""
    return (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=counts.dtype), counts))


def check_beta(beta: float) -> None:
    """Raise `ValueError` unless 0 <= beta < 1."""
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
