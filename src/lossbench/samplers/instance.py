"""Instance-balanced sampling: every example once per epoch."""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.samplers.base import Sampler
from lossbench.tasks.base import CLASSIFICATION, MULTILABEL, MULTITASK, REGRESSION


class InstanceSampler(Sampler):
    """A fresh random permutation of the training set each epoch (the usual shuffling)."""

    task_kinds = (CLASSIFICATION, REGRESSION, MULTILABEL, MULTITASK)

    def epoch_indices(self, epoch: int, generator: torch.Generator) -> Tensor:
        """A permutation of range(N)."""
        return torch.randperm(self.num_examples, generator=generator)
