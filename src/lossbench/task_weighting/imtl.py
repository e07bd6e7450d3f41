"""Impartial multi-task learning (IMTL; Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, ICLR 2021)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lossbench.task_weighting.base import GradientWeighting, check_tasks


def imtl_weights(grads: Tensor) -> Tensor:
    """IMTL-G weights (T,) from task gradients (T, P).

    The sum-to-one `w` whose combination `g = w G` has equal projections `g . u_t` on every unit gradient `u_t = g_t / ||g_t||` (paper eq. 7, closed form):
    `D = g_1 - g_{2..T}`, `U = u_1 - u_{2..T}`, `w_{2..T} = g_1 U^T (D U^T)^-1`, `w_1 = 1 - sum w_{2..T}`.
    """
    units = grads / grads.norm(dim=1, keepdim=True).clamp_min(1e-20)
    d = grads[:1] - grads[1:]
    u = units[:1] - units[1:]
    rest = grads[0] @ u.T @ torch.linalg.inv(d @ u.T)
    return torch.cat([(1 - rest.sum()).reshape(1), rest])


class IMTL(GradientWeighting):
    """IMTL-L (learnable loss scales, `e^{s_t} L_t - s_t`) followed by IMTL-G on the scaled losses.

    The hybrid the paper recommends and LibMTL implements (`IMTL.py`): the scales `s` (start 0)
    receive the gradient of the scaled losses and are stepped by the loop's optimizer; the shared
    parameters get `sum_t w_t g_t` with the IMTL-G weights of the scaled losses' gradients.
    """

    def __init__(self) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(0))

    def fit(self, num_tasks: int) -> None:
        """One loss scale per task."""
        super().fit(num_tasks)
        check_tasks(self)
        self.log_scale = nn.Parameter(torch.zeros(num_tasks))

    def transform(self, losses: Tensor) -> Tensor:
        """IMTL-L: `e^{s_t} L_t - s_t`."""
        s = self.log_scale.to(losses)
        return s.exp() * losses - s

    def combine(self, grads: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        """IMTL-G's weighted sum of the gradients."""
        w = imtl_weights(grads)
        return w @ grads, w
