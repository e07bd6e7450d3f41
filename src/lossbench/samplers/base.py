"""The sampler contract: which training examples make up each epoch, in which order."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor

from lossbench.tasks.base import CLASSIFICATION, REGRESSION, Task


class Sampler(ABC):
    """Returns the training indices of one epoch; the loop batches them in order.

    `fit(task, targets)` sees the task and the training targets (N,) once (class-aware samplers
    draw by the task's groups: classes, or label bins for regression); `epoch_indices(epoch,
    generator)` must draw all randomness from `generator` so runs are reproducible.
    """

    task_kinds: ClassVar[tuple[str, ...]] = (CLASSIFICATION, REGRESSION)

    def fit(self, task: Task, targets: Tensor) -> None:
        """See the training targets (N,). Default: remember N."""
        self.num_examples = len(targets)

    @abstractmethod
    def epoch_indices(self, epoch: int, generator: torch.Generator) -> Tensor:
        """Indices (int64) of the examples of 0-based `epoch`, in batch order."""
