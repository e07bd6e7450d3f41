"""Samplers that draw each example by first drawing its class (class-aware sampling)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from lossbench.samplers.base import Sampler
from lossbench.tasks.base import Task


class ClassProbabilitySampler(Sampler, ABC):
    """Draws N examples per epoch: a class from `class_probabilities(epoch)`, then an example of it.

    Classes are drawn i.i.d. with replacement and the example uniformly within its class (with
    replacement), all from the loop's generator, so epochs are reproducible. An epoch has N = len(train)
    draws, as many as instance sampling, so epochs compare in compute (Kang et al.'s code also stops an
    epoch after N / batch_size steps). Classes without training examples get probability 0.
    """

    class_counts: Tensor

    def fit(self, task: Task, targets: Tensor) -> None:
        """Index the training examples (N,) by group (class, or label bin)."""
        super().fit(task, targets)
        y = task.groups(torch.as_tensor(targets).cpu()).long()
        self.class_counts = torch.bincount(y, minlength=task.num_groups)
        self._order = torch.argsort(y, stable=True)  # example indices grouped by class
        self._starts = torch.cumsum(self.class_counts, 0) - self.class_counts

    def instance_probabilities(self) -> Tensor:
        """`n_c / N` (float64): the class distribution of instance sampling."""
        counts = self.class_counts.double()
        return counts / counts.sum()

    def balanced_probabilities(self) -> Tensor:
        """`1 / C'` for each of the C' classes with examples (float64)."""
        present = (self.class_counts > 0).double()
        return present / present.sum()

    @abstractmethod
    def class_probabilities(self, epoch: int) -> Tensor:
        """Probability (C,) float64, summing to 1, of drawing each class during 0-based `epoch`."""

    def epoch_indices(self, epoch: int, generator: torch.Generator) -> Tensor:
        """N example indices drawn class-first."""
        p = self.class_probabilities(epoch)
        n = self.num_examples
        classes = torch.multinomial(p, n, replacement=True, generator=generator)
        counts = self.class_counts[classes]
        offsets = (torch.rand(n, generator=generator, dtype=torch.float64) * counts).long()
        offsets = torch.minimum(offsets, counts - 1)
        return self._order[self._starts[classes] + offsets]
