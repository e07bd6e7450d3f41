"""The loss contract: logits and targets in, one loss per example out."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from lossbench.limits import Limit
from lossbench.tasks.base import CLASSIFICATION, Task


class Loss(nn.Module, metaclass=ABCMeta):
    """Maps model outputs (N, W) and targets (N,) to per-example losses (N,). Never reduces.

    `W` is the task's `output_width` and the targets have its `target_dtype`: logits (N, C) and
    int64 labels for classification, predictions (N, 1) and float targets for regression. The task
    kinds a loss accepts are its `task_kinds` (classification unless a loss says otherwise).

    Reduction and any per-class or per-example weighting belong to a `Weighting`, so every loss
    composes with every recipe. Losses that depend on the training label distribution (LDAM,
    balanced softmax, Balanced MSE, ...) read it in `fit(task, targets)`, called once before
    training with the task (`task.group_counts`: training examples per class or label bin) and the
    training targets (N,). `on_epoch_end(epoch, model)` is called after each epoch's last step.

    `logit_scale` is the factor the loss applies to the model's outputs before its softmax (LDAM's
    `s` on cosine logits); evaluation multiplies the logits by it, so NLL and ECE measure the
    distribution the model was trained to predict. Accuracy metrics are unaffected (scale > 0).
    """

    logit_scale: float = 1.0
    # Declared limits ("with gamma=0 this is `ce`"), verified by `lossbench check` (see lossbench.limits).
    limits: ClassVar[tuple[Limit, ...]] = ()
    fixed_lr: float | None = (
        None  # a constant learning rate for this module's own parameters (None: the trainer's)
    )
    task_kinds: ClassVar[tuple[str, ...]] = (CLASSIFICATION,)
    # Each example's loss depends on its own output and target only (the contract's "no reduction
    # across the batch"), so a stacked group computes equal losses of several members in one call on
    # their concatenated batches (train/stacked.py). A loss that couples a batch's examples says False.
    rowwise: ClassVar[bool] = True

    def fit(self, task: Task, targets: Tensor) -> None:
        """See the training statistics: the task and the training targets (N,). Default: nothing."""

    def on_epoch_end(self, epoch: int, model: nn.Module) -> None:
        """Called after the last step of 0-based `epoch`, before evaluation. Default: nothing."""

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
