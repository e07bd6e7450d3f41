"""Nash-MTL, multi-task learning as a bargaining game (Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya, ICML 2022)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from lossbench.task_weighting.base import GradientWeighting, check_tasks


def nash_weights(gram: np.ndarray) -> np.ndarray:
    """The positive solution of `(M alpha)_t = 1 / alpha_t` for a PSD Gram matrix M (T, T).

    It is the unique minimiser of the strictly convex `f(alpha) = alpha^T M alpha / 2 - sum log alpha`
    (its stationarity condition is exactly the Nash bargaining condition of the paper, eq. 5), so a
    bound-constrained quasi-Newton solve (scipy L-BFGS-B) replaces the authors' sequence of convex
    programs in cvxpy: same fixed point, no extra dependency.
    """
    t = len(gram)

    def f(a: np.ndarray) -> tuple[float, np.ndarray]:
        ma = gram @ a
        return float(a @ ma / 2 - np.log(a).sum()), ma - 1 / a

    start = np.full(t, 1.0 / np.sqrt(max(np.trace(gram) / t, 1e-12)))
    res = minimize(f, start, jac=True, method="L-BFGS-B", bounds=[(1e-8, None)] * t,
                   options={"maxiter": 500, "ftol": 1e-15, "gtol": 1e-10})  # fmt: skip
    return res.x


class NashMTL(GradientWeighting):
    """Shared update `sum_t alpha_t g_t` with the Nash bargaining weights of the task gradients.

    As in the authors' code the Gram matrix is divided by its Frobenius norm before solving (scale
    invariance), and the weights are re-solved every `update_every` steps (reused in between).
    Gradient clipping (their `max_norm`) belongs to the trainer and is not applied here.

    Args:
        update_every: Steps between two solves (1 = every step, the paper's setting).
    """

    extra_state_keys = ("num_tasks", "step", "alpha")

    def __init__(self, update_every: int = 1) -> None:
        super().__init__()
        if update_every < 1:
            raise ValueError(f"update_every must be >= 1, got {update_every}")
        self.update_every = int(update_every)
        self.step = 0
        self.alpha: Tensor | None = None

    def combine(self, grads: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        """Solve (or reuse) the bargaining weights."""
        check_tasks(self)
        if self.alpha is None or self.step % self.update_every == 0:
            gram = (grads @ grads.T).double().cpu().numpy()
            gram = gram / max(np.linalg.norm(gram), 1e-20)
            self.alpha = torch.as_tensor(nash_weights(gram), dtype=grads.dtype, device=grads.device)
        self.step += 1
        return self.alpha @ grads, self.alpha
