"""No re-weighting."""

from __future__ import annotations

from torch import Tensor

from lossbench.tasks.base import CLASSIFICATION, MULTILABEL, REGRESSION
from lossbench.weighting.base import ClassWeighting


class NoWeighting(ClassWeighting):
    """Every class weighs 1: the objective is the plain mean of the per-example losses."""

    task_kinds = (CLASSIFICATION, REGRESSION, MULTILABEL)

    def compute_weights(self, counts: Tensor) -> Tensor:
        """All ones."""
        return counts.new_ones(counts.shape)
