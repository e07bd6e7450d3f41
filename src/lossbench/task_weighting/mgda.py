"""MGDA-UB, multi-task learning as multi-objective optimisation (Sener & Koltun, NeurIPS 2018)."""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.task_weighting.base import GradientWeighting, check_tasks

NORMALIZATIONS = ("none", "l2", "loss", "loss+")


def min_norm_weights(grads: Tensor, iterations: int = 250, tol: float = 1e-5) -> Tensor:
    """The point of the convex hull of the rows of `grads` (T, P) with the smallest norm, as weights (T,).

    Frank-Wolfe on the simplex with exact line search, as the authors' `MinNormSolver`: for two
    gradients the closed form `gamma = clip((g2 - g1) . g2 / ||g1 - g2||^2, 0, 1)`, `w = (gamma, 1 - gamma)`.
    Their solver starts from the best pair; we start from uniform weights (same fixed point).
    """
    gram = (grads @ grads.T).double()
    t = len(gram)
    w = torch.full((t,), 1.0 / t, dtype=torch.float64)
    for _ in range(iterations):
        k = int(torch.argmin(gram @ w))
        # line search between w (point a) and vertex e_k (point b): min ||(1 - g) a + g b||
        aa, ab, bb = w @ gram @ w, gram[k] @ w, gram[k, k]
        denom = aa - 2 * ab + bb
        gamma = 1.0 if denom <= 0 else float(((aa - ab) / denom).clamp(0.0, 1.0))
        new = (1 - gamma) * w
        new[k] += gamma
        if (new - w).abs().sum() < tol:
            w = new
            break
        w = new
    return w


def normalizers(grads: Tensor, losses: Tensor, kind: str) -> Tensor:
    """The authors' gradient normalisers (T,): none=1, l2=||g||, loss=L, loss+=L ||g||."""
    if kind == "none":
        return torch.ones_like(losses)
    if kind == "l2":
        return grads.norm(dim=1)
    if kind == "loss":
        return losses
    return losses * grads.norm(dim=1)


class MGDA(GradientWeighting):
    """Task weights = the min-norm combination of (normalised) task gradients.

    With `upper_bound=True` (MGDA-UB, the paper's Algorithm 2) the gradients are taken with respect
    to the shared representation (the trunk's output), one cheap backward per task; otherwise with
    respect to the shared parameters. The weights are found on the gradients divided by the
    normaliser (`normalization`; the authors' MultiMNIST runs use `loss+`, LibMTL's default is
    `none`) and then applied to the raw losses, as in the authors' code.

    Args:
        upper_bound: Gradients on the representation (MGDA-UB) instead of the shared parameters.
        normalization: ``none`` | ``l2`` | ``loss`` | ``loss+``.
    """

    def __init__(self, upper_bound: bool = True, normalization: str = "loss+") -> None:
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}"
            )
        self.upper_bound, self.normalization = bool(upper_bound), normalization
        self.on_features = self.upper_bound

    def combine(self, grads: Tensor, losses: Tensor) -> tuple[Tensor | None, Tensor]:
        """Min-norm weights; the direction itself when the gradients are on parameters."""
        check_tasks(self)
        scale = normalizers(grads, losses, self.normalization).clamp_min(1e-12)
        w = min_norm_weights(grads / scale[:, None]).to(grads)
        return (None if self.upper_bound else w @ grads), w
