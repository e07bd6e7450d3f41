"""Dual-balancing multi-task learning (DB-MTL; Lin, Ye, Xu, Shi & Zhang, 2023)."""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.task_weighting.base import GradientWeighting, check_tasks


class DualBalancing(GradientWeighting):
    """Loss scale balanced by a log transform, gradient magnitude balanced by the largest norm.

    Gradients of `log(L_t + eps)` are averaged with an EMA `m <- g + beta / step^beta_sigma (m - g)`
    (the authors' code in LibMTL `DB_MTL.py`), then each task's EMA is rescaled to the largest EMA
    norm: `d = sum_t max_k ||m_k|| / ||m_t|| m_t`. Heads get the gradients of `sum_t log L_t`.

    Args:
        beta: EMA factor (0.9 in LibMTL's examples).
        beta_sigma: Decay exponent of the EMA factor over steps (0.5).
        eps: Added inside the log (1e-8).
    """

    buffer: Tensor

    extra_state_keys = ("num_tasks", "step")

    def __init__(self, beta: float = 0.9, beta_sigma: float = 0.5, eps: float = 1e-8) -> None:
        super().__init__()
        if not 0 <= beta < 1:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        self.beta, self.beta_sigma, self.eps = float(beta), float(beta_sigma), float(eps)
        self.register_buffer("buffer", torch.zeros(0))
        self.step = 0

    def transform(self, losses: Tensor) -> Tensor:
        """`log(L_t + eps)`."""
        return (losses + self.eps).log()

    def combine(self, grads: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        """Update the gradient EMA and rescale every task to the largest norm."""
        check_tasks(self)
        self.step += 1
        if self.buffer.shape != grads.shape:
            self.buffer = torch.zeros_like(grads)
        factor = self.beta / self.step**self.beta_sigma
        self.buffer = grads + factor * (self.buffer - grads)
        norms = self.buffer.norm(dim=1)
        w = norms.max() / (norms + 1e-8)
        return w @ self.buffer, w
