"""Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lossbench.task_weighting.base import LossWeighting


class UncertaintyWeighting(LossWeighting):
    """`sum_t L_t / (2 exp(s_t)) + s_t / 2`, with learnable log-variances `s_t = log sigma_t^2`.

    The paper uses `1/sigma^2` for classification and `1/(2 sigma^2)` for regression terms; LibMTL
    (`UW.py`) and most re-implementations use the regression form for every task, which we follow
    (one form for mixed task kinds). `s` starts at `init_log_variance` (LibMTL: -0.5) and is stepped
    by the loop's optimizer. The minimiser in `s_t` for fixed `L_t` is `s_t = log L_t`.

    Args:
        init_log_variance: Initial value of every `s_t`.
    """

    def __init__(self, init_log_variance: float = -0.5) -> None:
        super().__init__()
        self.init_log_variance = float(init_log_variance)
        self.log_variance = nn.Parameter(torch.zeros(0))

    def fit(self, num_tasks: int) -> None:
        """Create one log-variance per task."""
        super().fit(num_tasks)
        self.log_variance = nn.Parameter(torch.full((num_tasks,), self.init_log_variance))

    def objective(self, losses: Tensor) -> tuple[Tensor, Tensor]:
        """The UW objective and the effective weights `1 / (2 exp(s_t))`."""
        s = self.log_variance.to(losses.dtype)
        weights = 0.5 * torch.exp(-s)
        return (weights * losses + 0.5 * s).sum(), weights.detach()
