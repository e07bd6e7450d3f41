"""Progressively-balanced sampling."""

from __future__ import annotations

from torch import Tensor

from lossbench.samplers.by_class import ClassProbabilitySampler


class ProgressiveSampler(ClassProbabilitySampler):
    """Progressively-balanced sampling (Kang et al., ICLR 2020).

    `p_c(t) = (1 - t/T) * n_c/N + (t/T) * 1/C` at 0-based epoch t of T: instance-balanced at the
    first epoch, moving linearly towards class-balanced.

    Args:
        epochs: Total number of training epochs T (>= 1); the config takes `trainer.epochs`.
    """

    def __init__(self, epochs: int) -> None:
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        self.epochs = int(epochs)

    def class_probabilities(self, epoch: int) -> Tensor:
        """The instance/class-balanced mixture at `epoch` (clamped to [0, T])."""
        t = min(max(epoch, 0), self.epochs) / self.epochs
        return (1.0 - t) * self.instance_probabilities() + t * self.balanced_probabilities()
