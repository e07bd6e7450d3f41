"""The weighting contract: per-example losses in, one scalar out."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor, nn

from lossbench.limits import Limit
from lossbench.tasks.base import CLASSIFICATION, REGRESSION, Task


class Weighting(nn.Module, metaclass=ABCMeta):
    """Reduces per-example losses (N,) to a scalar; `fit(task, targets)` sees the training set once.

    `fit` gets the task (its groups: classes or label bins, with training counts) and the training
    targets (N,). The loop calls `on_epoch_start(epoch)` before each epoch (deferred recipes switch
    there), `forward(losses, targets, logits, features)` on every batch (`logits` are the model
    outputs (N, W), `features` the penultimate features; most recipes read only `losses` and
    `targets`) and `on_epoch_end(epoch, model)` after each epoch's last step. Learnable parameters,
    if any, are added to the optimizer by the loop. `task_kinds` are the task kinds it supports.
    """

    # Declared limits ("with power=0 this is `none`"), verified by `lossbench check` (lossbench.limits).
    limits: ClassVar[tuple[Limit, ...]] = ()

    fixed_lr: float | None = (
        None  # a constant learning rate for this module's own parameters (None: the trainer's)
    )
    task_kinds: ClassVar[tuple[str, ...]] = (CLASSIFICATION, REGRESSION)

    def fit(self, task: Task, targets: Tensor) -> None:
        """See the training statistics: the task and the training targets (N,). Default: nothing."""

    def on_epoch_start(self, epoch: int) -> None:
        """Called with the 0-based epoch before it starts. Default: nothing to do."""

    def on_epoch_end(self, epoch: int, model: nn.Module) -> None:
        """Called after the last step of 0-based `epoch`, before evaluation. Default: nothing."""

    @abstractmethod
    def forward(self, losses: Tensor, targets: Tensor, logits: Tensor, features: Tensor) -> Tensor:
        """The scalar training objective."""


class ClassWeighting(Weighting):
    """Weighted mean of per-example losses with one weight per group (class, or label bin).

    For classification the groups are the classes; for regression they are the task's label bins
    (`task.groups(targets)`), so every recipe below serves both kinds unchanged.

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

    def fit(self, task: Task, targets: Tensor) -> None:
        """Compute the group weights from `task.group_counts`, normalised to sum to G."""
        counts = torch.as_tensor(task.group_counts, dtype=torch.float64)
        w = self.compute_weights(counts.clamp(min=1.0))
        self.target_weights = (w * len(w) / w.sum()).float()
        self.task = task

    def groups(self, targets: Tensor) -> Tensor:
        """Group index (N,) of each target: the label itself for classification, its bin for regression."""
        return self.task.groups(targets)

    def forward(self, losses: Tensor, targets: Tensor, logits: Tensor, features: Tensor) -> Tensor:
        """Weighted mean of `losses` by the class weights of `targets` (plain mean while inactive)."""
        if not self.active:
            return losses.mean()
        if self.target_weights.numel() == 0:
            raise RuntimeError(f"{type(self).__name__}.fit(task, targets) must be called before use")
        w = self.target_weights.to(losses.dtype)[self.groups(targets)]
        return (w * losses).sum() / w.sum()

    def forward_rows(self, losses: Tensor, targets: Tensor) -> Tensor:
        """`forward` of each row: the objectives (K,) of K batches of losses and targets (K, B).

        A stacked group reduces the batches of its members with equal recipes in one call
        (train/stacked.py); row k equals `forward(losses[k], targets[k], ...)` up to float rounding
        (the sums run along a row instead of over a vector).
        """
        if not self.active:
            return losses.mean(1)
        if self.target_weights.numel() == 0:
            raise RuntimeError(f"{type(self).__name__}.fit(task, targets) must be called before use")
        w = self.target_weights.to(losses.dtype)[self.groups(targets.flatten(0, 1))].view(losses.shape)
        return (w * losses).sum(1) / w.sum(1)


def reduces_rows(weighting: Weighting) -> bool:
    """Whether `weighting.forward_rows` is its `forward` row by row (a class weighting that keeps its reduction)."""
    return isinstance(weighting, ClassWeighting) and type(weighting).forward is ClassWeighting.forward


def effective_number_weights(counts: Tensor, beta: float) -> Tensor:
    """Class-balanced weights of Cui et al. (2019): `(1 - beta) / (1 - beta^n_c)` (un-normalised)."""
    return (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=counts.dtype), counts))


def check_beta(beta: float) -> None:
    """Raise `ValueError` unless 0 <= beta < 1."""
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
