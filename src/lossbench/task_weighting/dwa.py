"""Dynamic weight average (DWA; Liu, Johns & Davison, CVPR 2019)."""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.task_weighting.base import LossWeighting


def dwa_weights(history: list[Tensor], num_tasks: int, temperature: float) -> Tensor:
    """DWA weights (T,) from the per-epoch mean task losses seen so far.

    `r_t = L_t(e-1) / L_t(e-2)`, `w = T softmax(r / temperature)`; ones for the first two epochs
    (fewer than two epochs of history), as in the paper (eq. 3) and LibMTL's `DWA.py`.
    """
    if len(history) < 2:
        return torch.ones(num_tasks, dtype=torch.float64)
    ratio = history[-1] / history[-2]
    return num_tasks * torch.softmax(ratio / temperature, dim=0)


class DynamicWeightAverage(LossWeighting):
    """`sum_t w_t L_t` with the DWA weights of the current epoch (fixed within an epoch).

    Args:
        temperature: The softness `T` of the paper (2 there and in LibMTL).
    """

    def __init__(self, temperature: float = 2.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def objective(self, losses: Tensor) -> tuple[Tensor, Tensor]:
        """The weighted sum with this epoch's weights."""
        weights = dwa_weights(self.history, self.num_tasks, self.temperature).to(losses)
        return (weights * losses).sum(), weights
