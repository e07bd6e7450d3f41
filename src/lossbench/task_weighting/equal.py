"""Equal weighting (EW): the plain sum of the task losses."""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.task_weighting.base import LossWeighting


class EqualWeighting(LossWeighting):
    """`sum_t L_t`: every task weighted 1, the baseline of LibMTL (`EW.py`) and of the MTL literature."""

    min_tasks = 1

    def objective(self, losses: Tensor) -> tuple[Tensor, Tensor]:
        """The sum of the losses (T,) and weights of ones."""
        return losses.sum(), torch.ones_like(losses)
