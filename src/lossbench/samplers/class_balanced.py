"""Class-balanced sampling."""

from __future__ import annotations

from torch import Tensor

from lossbench.samplers.by_class import ClassProbabilitySampler


class ClassBalancedSampler(ClassProbabilitySampler):
    """Every class equally likely, then uniform within the class (Kang et al., ICLR 2020, p_c = 1/C).

    Kang et al.'s `ClassAwareSampler` cycles through shuffled classes and takes 4 examples per visit;
    we draw classes i.i.d., which has the same class distribution. Used by cRT's second stage.
    """

    def class_probabilities(self, epoch: int) -> Tensor:
        """Uniform over the classes that have training examples."""
        return self.balanced_probabilities()
