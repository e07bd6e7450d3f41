"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lossbench.task_weighting.base import GradientWeighting, check_tasks


class GradNorm(GradientWeighting):
    """Learn task weights so that every task's weighted gradient norm trains at a common rate.

    Weights `w = T softmax(a)` (sum T; LibMTL's parametrisation of the paper's renormalisation to
    sum T after each step). With `G_t = w_t ||g_t||` over the shared parameters, mean `Gbar`, and
    relative inverse training rates `r_t = Ltilde_t / mean(Ltilde)`, `Ltilde_t = L_t / L_t(0)`, the
    weights minimise `sum_t |G_t - stopgrad(Gbar r_t^alpha)|` (paper eq. 2); `a` is stepped by the
    loop's optimizer, the shared parameters get `sum_t w_t g_t`. As in LibMTL (`GradNorm.py`) the
    reference losses `L_t(0)` are the mean losses of the first epoch, which is trained with equal
    weights, and the norms are taken over all shared parameters (the paper: the last shared layer).

    Args:
        alpha: Restoring-force strength (1.5 in the paper's NYUv2 runs and LibMTL's default).
    """

    def __init__(self, alpha: float = 1.5) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.logits = nn.Parameter(torch.zeros(0))

    def fit(self, num_tasks: int) -> None:
        """One weight logit per task (weights start equal)."""
        super().fit(num_tasks)
        check_tasks(self)
        self.logits = nn.Parameter(torch.zeros(num_tasks))

    def weights(self) -> Tensor:
        """The current task weights (T,), summing to T."""
        return self.num_tasks * torch.softmax(self.logits, 0)

    def balance_loss(self, grads: Tensor, losses: Tensor) -> Tensor:
        """The GradNorm objective of the weight logits (scalar) after the first epoch."""
        w = self.weights().to(grads)
        norms = w * grads.norm(dim=1)
        ratio = losses.detach() / self.history[0].to(losses)
        target = (norms.mean() * (ratio / ratio.mean()) ** self.alpha).detach()
        return (norms - target).abs().sum()

    def combine(self, grads: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
        """Step-0 epoch: plain sum; afterwards backpropagate the balance loss into the logits."""
        if not self.history:
            return grads.sum(0), torch.ones(self.num_tasks, dtype=grads.dtype)
        with torch.enable_grad():
            self.balance_loss(grads, losses).backward(inputs=[self.logits])
        w = self.weights().detach().to(grads)
        return w @ grads, w
