"""Random loss weighting (RLW; Lin et al., TMLR 2022)."""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.task_weighting.base import LossWeighting


class RandomLossWeighting(LossWeighting):
    """Fresh weights every batch: `w = softmax(z)`, `z ~ N(0, I_T)` (the paper's normal variant, LibMTL `RLW.py`).

    Drawn from torch's global generator, which the loop seeds, so a run is reproducible.
    """

    def objective(self, losses: Tensor) -> tuple[Tensor, Tensor]:
        """`sum_t w_t L_t` with random weights on the simplex."""
        weights = torch.softmax(torch.randn(len(losses)), dim=0).to(losses)
        return (weights * losses).sum(), weights
