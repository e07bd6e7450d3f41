"""Aligned-MTL (Senushkin, Patakin, Kuznetsov & Konushin, CVPR 2023)."""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.task_weighting.base import GradientWeighting, check_tasks


def aligned_weights(grads: Tensor) -> Tensor:
    """Aligned-MTL weights (T,): align the principal components of G to the smallest one.

    Eigen-decompose the Gram matrix `M = G G^T = V diag(lambda) V^T`, keep the eigenvalues above
    `max(lambda) T eps`, `B = sqrt(lambda_min) V diag(lambda)^-1/2 V^T`, weights `w = B 1` (the
    authors' code with unit task pre-weights, as in LibMTL `Aligned_MTL.py`). The aligned gradient
    `w G` makes the stable rank of the combined system 1 (all singular values equal `sqrt(lambda_min)`).
    """
    gram = (grads @ grads.T).double()
    lam, vec = torch.linalg.eigh(gram)
    tol = lam.max() * len(gram) * torch.finfo(torch.float32).eps
    keep = lam > tol
    lam, vec = lam[keep], vec[:, keep]
    b = lam.min().sqrt() * (vec @ torch.diag(lam.rsqrt()) @ vec.T)
    return b.sum(0).to(grads.dtype)


class AlignedMTL(GradientWeighting):
    """The shared update is `w G` with the Aligned-MTL weights."""

    def combine(self, grads: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        """Aligned weights and direction."""
        check_tasks(self)
        w = aligned_weights(grads)
        return w @ grads, w
