"""PCGrad, gradient surgery (Yu, Kumar, Gupta, Levine, Hausman & Finn, NeurIPS 2020)."""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.task_weighting.base import GradientWeighting, check_tasks


def project_conflicting(grads: Tensor, order: list[list[int]]) -> Tensor:
    """PCGrad's projected gradients (T, P): `order[i]` is the task order used for task i.

    For each task i, its copy `g_i'` is projected onto the normal plane of every `g_j` it conflicts
    with (`g_i' . g_j < 0`: `g_i' -= (g_i' . g_j) / ||g_j||^2 g_j`), in the order given. As in the
    authors' code and LibMTL (`PCGrad.py`), the order is a random permutation of all tasks per i
    and projections use the original `g_j`.
    """
    out = grads.clone()
    for i, tasks in enumerate(order):
        for j in tasks:
            dot = out[i] @ grads[j]
            if dot < 0:
                out[i] -= dot / grads[j].pow(2).sum().clamp_min(1e-20) * grads[j]
    return out


class PCGrad(GradientWeighting):
    """The shared update is the sum of the projected task gradients; weights reported as ones."""

    def combine(self, grads: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        """Project conflicting pairs in a random order (the loop seeds torch's generator), then sum."""
        check_tasks(self)
        order = [torch.randperm(self.num_tasks).tolist() for _ in range(self.num_tasks)]
        return project_conflicting(grads, order).sum(0), torch.ones(self.num_tasks, dtype=grads.dtype)
