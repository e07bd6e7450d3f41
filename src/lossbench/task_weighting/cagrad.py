"""Conflict-averse gradient descent (CAGrad; Liu, Liu, Jin, Stone & Liu, NeurIPS 2021)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from lossbench.task_weighting.base import GradientWeighting, check_tasks


def cagrad_direction(grads: Tensor, c: float, rescale: int = 1) -> tuple[Tensor, Tensor]:
    """CAGrad's update (P,) and the simplex weights w (T,) of its inner problem.

    `g0` = mean gradient; `w = argmin_{w in simplex} g_w . g0 + sqrt(phi) ||g_w||` with
    `g_w = sum_t w_t g_t` and `sqrt(phi) = c ||g0||` (dual of paper eq. 3, solved with scipy's
    SLSQP from uniform weights on the Gram matrix, as in the authors' code); then
    `d = g0 + sqrt(phi) / ||g_w|| g_w`, divided by `1 + c^2` when `rescale == 1`, by 1 when 0
    (authors' `rescale` option; LibMTL's default 1).
    """
    gram = (grads @ grads.T).double().cpu().numpy()
    t = len(gram)
    g0_norm = float(np.sqrt(max(gram.mean(), 0.0)))
    root_phi = c * g0_norm + 1e-8
    b = np.full(t, 1.0 / t)

    def objective(w: np.ndarray) -> float:
        return float(w @ gram @ b + root_phi * np.sqrt(max(w @ gram @ w, 0.0) + 1e-8))

    res = minimize(objective, b, bounds=[(0.0, 1.0)] * t, method="SLSQP",
                   constraints=({"type": "eq", "fun": lambda w: 1.0 - w.sum()},))  # fmt: skip
    w = torch.as_tensor(res.x, dtype=grads.dtype, device=grads.device)
    gw = w @ grads
    g0 = grads.mean(0)
    d = g0 + root_phi / (gw.norm() + 1e-8) * gw
    if rescale == 1:
        d = d / (1 + c**2)
    return d, w


class CAGrad(GradientWeighting):
    """Minimise the average loss while improving the worst task within a ball around the mean gradient.

    Args:
        c: Radius factor `c` of the paper (alpha in code; 0.4 on MultiMNIST-like sets, LibMTL 0.5).
        rescale: 1: divide the update by `1 + c^2` (authors' and LibMTL's default); 0: no rescaling.
    """

    def __init__(self, c: float = 0.5, rescale: int = 1) -> None:
        super().__init__()
        if c < 0 or rescale not in (0, 1):
            raise ValueError(f"CAGrad needs c >= 0 and rescale in (0, 1), got c={c}, rescale={rescale}")
        self.c, self.rescale = float(c), int(rescale)

    def combine(self, grads: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        """The CAGrad direction; the reported weights are the inner problem's w."""
        check_tasks(self)
        return cagrad_direction(grads, self.c, self.rescale)
