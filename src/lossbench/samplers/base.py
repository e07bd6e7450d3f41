"""The sampler contract: which training examples make up each epoch, in which order."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor


class Sampler(ABC):
    """Returns the training indices of one epoch; the loop batches them in order.

    `fit(targets, num_classes)` sees the training labels once; `epoch_indices(epoch, generator)`
    must draw all randomness from `generator` so runs are reproducible.
    """

    def fit(self, targets: Tensor, num_classes: int) -> None:
        """See the training labels (N,). Default: remember N."""
        self.num_examples = len(targets)

    @abstractmethod
    def epoch_indices(self, epoch: int, generator: torch.Generator) -> Tensor:
        """Indices (int64) of the examples of 0-based `epoch`, in batch order."""
