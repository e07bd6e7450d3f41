"""Fast adaptive multitask optimisation (FAMO; Liu, Liu, Stone & Liu, NeurIPS 2023)."""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.task_weighting.base import LossWeighting, check_tasks


class FAMO(LossWeighting):
    """`sum_t (z_t / c) log(L_t - L*_t + eps)`, `z = softmax(xi)`, `c = sum_t z_t / (L_t - L*_t + eps)`.

    The gradient is `sum_t z_t / (c L_t) grad L_t`, so every task's log-loss decreases at a balanced
    rate. The logits `xi` follow FAMO's own rule, not the loop's optimizer: Adam (lr `w_lr`, L2
    weight decay `gamma`) on the pseudo-gradient `J_softmax(xi)^T delta`, `delta_t = log L_t(before) - log
    L_t(after)` (authors' code and LibMTL `FAMO.py`, `update_w`). Deviation, documented: the authors
    take `delta` per step from a second forward pass on the same batch after the update; within our
    one loop we update once per epoch from the epoch means of the task losses (`history`), so no
    extra forward pass is needed. `L*` (the losses' lower bounds) is 0, as in both references.

    Args:
        w_lr: Learning rate of `xi` (0.025 in the authors' code).
        gamma: Weight decay of `xi` (1e-3).
        eps: Added inside the log (1e-8).
    """

    xi: Tensor
    moment1: Tensor
    moment2: Tensor

    extra_state_keys = ("num_tasks", "steps")

    def __init__(self, w_lr: float = 0.025, gamma: float = 1e-3, eps: float = 1e-8) -> None:
        super().__init__()
        self.w_lr, self.gamma, self.eps = float(w_lr), float(gamma), float(eps)
        for name in ("xi", "moment1", "moment2"):
            self.register_buffer(name, torch.zeros(0))
        self.steps = 0

    def fit(self, num_tasks: int) -> None:
        """Start from equal logits."""
        super().fit(num_tasks)
        check_tasks(self)
        self.xi, self.moment1, self.moment2 = (torch.zeros(num_tasks) for _ in range(3))

    def on_epoch_start(self, epoch: int) -> None:
        """After an epoch, step `xi` with the change of the log mean losses over the last two epochs."""
        super().on_epoch_start(epoch)
        if len(self.history) >= 2:
            self.update(self.history[-2], self.history[-1])

    def update(self, before: Tensor, after: Tensor) -> None:
        """One FAMO step of `xi` from task losses before (T,) and after (T,) an update.

        Adam as `torch.optim.Adam` (betas 0.9, 0.999, eps 1e-8, L2 weight decay `gamma`), written out
        so its moments are buffers (checkpointed with the run).
        """
        delta = ((before.double() + self.eps).log() - (after.double() + self.eps).log()).to(self.xi)
        xi = self.xi.detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(torch.softmax(xi, 0), xi, grad_outputs=delta)
        grad = grad + self.gamma * self.xi
        self.steps += 1
        self.moment1 = 0.9 * self.moment1 + 0.1 * grad
        self.moment2 = 0.999 * self.moment2 + 0.001 * grad**2
        denom = (self.moment2 / (1 - 0.999**self.steps)).sqrt() + 1e-8
        self.xi = self.xi - self.w_lr * self.moment1 / (1 - 0.9**self.steps) / denom

    def objective(self, losses: Tensor) -> tuple[Tensor, Tensor]:
        """The FAMO objective and its effective weights `z_t / (c L_t)`."""
        z = torch.softmax(self.xi, 0).to(losses)
        shifted = losses + self.eps
        c = (z / shifted).sum().detach()
        return (z / c * shifted.log()).sum(), (z / (c * shifted)).detach()
