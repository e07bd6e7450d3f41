"""DenseWeight (Steininger et al., Machine Learning 2021): weights that fall with the target's density."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lossbench.tasks.base import REGRESSION, Task
from lossbench.weighting.base import Weighting


def silverman_bandwidth(y: Tensor) -> float:
    """Silverman's rule `0.9 min(std, IQR / 1.34) n^(-1/5)` (std if the IQR is 0)."""
    std = float(y.std())
    q75, q25 = torch.quantile(y, torch.tensor([0.75, 0.25], dtype=y.dtype)).tolist()
    spread = min(std, (q75 - q25) / 1.34) if q75 > q25 else std
    return 0.9 * (spread if spread > 0 else 1.0) * len(y) ** -0.2


class DenseWeighting(Weighting):
    """Example weights `f(y) = max(1 - alpha p'(y), epsilon) / mean_train f`, a weighted mean per batch.

    `p` is a Gaussian kernel density estimate of the training targets (bandwidth: Silverman's rule,
    the DenseWeight package's default), `p'` its min-max normalisation over the training targets,
    so the most common target gets `1 - alpha` and the rarest 1 (Steininger et al., eqs. 2-4). The
    density is evaluated exactly (the package evaluates an FFT KDE on a grid and interpolates; the
    two agree up to that grid's resolution). `alpha = 0` gives the plain mean. The batch objective is
    `sum_i f_i l_i / sum_i f_i` like every other weighting (the mean-1 scaling cancels there).

    Args:
        alpha: Strength (>= 0); 1 weighs the most common target by `epsilon`.
        epsilon: Smallest weight (> 0).
    """

    task_kinds = (REGRESSION,)
    train_targets: Tensor

    def __init__(self, alpha: float = 1.0, epsilon: float = 1e-6) -> None:
        super().__init__()
        if not alpha >= 0 or not epsilon > 0:
            raise ValueError(f"need alpha >= 0 and epsilon > 0, got {alpha}, {epsilon}")
        self.alpha, self.epsilon = float(alpha), float(epsilon)
        self.register_buffer("train_targets", torch.zeros(0, dtype=torch.float64))
        self.bandwidth, self.low, self.high, self.mean_weight = 1.0, 0.0, 1.0, 1.0

    def density(self, y: Tensor) -> Tensor:
        """The KDE (N,) float64 at targets y (N,)."""
        z = (y.double()[:, None] - self.train_targets[None, :].to(y.device)) / self.bandwidth
        return torch.exp(-0.5 * z.square()).mean(1) / (self.bandwidth * math.sqrt(2 * math.pi))

    def example_weights(self, y: Tensor) -> Tensor:
        """`max(1 - alpha p'(y), epsilon) / mean_weight` (N,) float64."""
        scaled = (
            (self.density(y) - self.low) / (self.high - self.low)
            if self.high > self.low
            else torch.zeros_like(y.double())
        )
        return (1 - self.alpha * scaled).clamp(min=self.epsilon) / self.mean_weight

    def fit(self, task: Task, targets: Tensor) -> None:
        """Fit the KDE and its normalisation on the training targets (N,)."""
        y = targets.double().reshape(-1).cpu()
        self.train_targets, self.bandwidth = y, silverman_bandwidth(y)
        dens = self.density(y)
        self.low, self.high, self.mean_weight = float(dens.min()), float(dens.max()), 1.0
        self.mean_weight = float(self.example_weights(y).mean())

    def forward(self, losses: Tensor, targets: Tensor, logits: Tensor, features: Tensor) -> Tensor:
        """Weighted mean `sum f_i l_i / sum f_i`."""
        w = self.example_weights(targets).to(losses.dtype)
        return (w * losses).sum() / w.sum()
