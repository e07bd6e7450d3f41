"""Influence-balanced weighting."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lossbench.tasks.base import CLASSIFICATION
from lossbench.weighting.base import ClassWeighting


class InfluenceBalancedWeighting(ClassWeighting):
    """IB loss (Park et al., ICCV 2021): each example weighed by its class weight over its influence.

    From `start_epoch` on, example i gets the weight
    `w_i = c_{y_i} * alpha / (||softmax(z_i) - onehot(y_i)||_1 * ||h_i||_1 + epsilon)`,
    where `h_i` are the penultimate features and `c` the inverse-frequency class weights normalised to
    sum to C (the reference's `IBReweight` rule, the one its README pairs with the IB loss). Before
    `start_epoch` the objective is the plain mean (the reference trains with plain CE first).

    Choices, against the reference (github pseulki/IB-Loss, `IBLoss`):

    * Nothing is detached by default, as in the reference: the gradient also flows through the
      influence (the softmax and the feature norm), which rewards larger features. Started on an
      under-fitted model at a full learning rate (e.g. `trainer.epochs=5`, IB from epoch 2), this
      blows the feature norms up and training collapses; the reference starts after 100 CE epochs
      at 1/100 of the rate. `detach=True` treats the weights as constants (the paper's reading of
      the influence as a per-example weight), which is stable on short schedules.
    * Reduction. The reference returns `mean_i(w_i * l_i)` (divides by N) and, to tame the resulting
      scale (`alpha / influence` is in the hundreds), multiplies the learning rate by 0.01 when IB
      starts. We keep the one convention of every weighting, `sum_i w_i l_i / sum_i w_i`, with the
      normaliser `sum_i w_i` detached. Each batch's gradient is then exactly the reference's
      gradient times the positive batch scalar `N / sum_i w_i`: same direction, a step size on the
      scale of the plain mean, so the trainer's schedule needs no 100x drop. `alpha` cancels in
      the value; it still sets `epsilon`'s relative size and is kept for fidelity.

    Args:
        start_epoch: First (0-based) epoch that uses the influence weights (>= 0).
        alpha: Numerator of the influence weights (> 0); the reference's CIFAR scripts use 1000.
        epsilon: Added to the influence (> 0); the reference uses 0.001.
        detach: Treat the influence weights as constants (no gradient through them); the
            reference does not detach (False).
    """

    task_kinds = (CLASSIFICATION,)  # the influence reads softmax(logits) - onehot(label)

    def __init__(
        self, start_epoch: int = 100, alpha: float = 1000.0, epsilon: float = 1e-3, detach: bool = False
    ) -> None:
        super().__init__()
        if start_epoch < 0:
            raise ValueError(f"start_epoch must be >= 0, got {start_epoch}")
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        self.start_epoch, self.alpha, self.epsilon = int(start_epoch), float(alpha), float(epsilon)
        self.detach = bool(detach)
        self.active = start_epoch == 0

    def compute_weights(self, counts: Tensor) -> Tensor:
        """Inverse class frequencies (the class-weight factor `c`)."""
        return counts.reciprocal()

    def on_epoch_start(self, epoch: int) -> None:
        """Switch the influence weights on at `start_epoch`."""
        self.active = epoch >= self.start_epoch

    def influence(self, targets: Tensor, logits: Tensor, features: Tensor) -> Tensor:
        """`||softmax(z) - onehot(y)||_1 * ||h||_1` per example (N,), not detached."""
        residual = F.softmax(logits, dim=1) - F.one_hot(targets, logits.shape[1]).to(logits.dtype)
        return residual.abs().sum(1) * features.flatten(1).abs().sum(1).to(logits.dtype)

    def example_weights(self, targets: Tensor, logits: Tensor, features: Tensor) -> Tensor:
        """`c_y * alpha / (influence + epsilon)` per example (N,)."""
        if self.target_weights.numel() == 0:
            raise RuntimeError("InfluenceBalancedWeighting.fit(task, targets) must be called before use")
        c = self.target_weights.to(logits.dtype)[targets]
        return c * self.alpha / (self.influence(targets, logits, features) + self.epsilon)

    def forward(self, losses: Tensor, targets: Tensor, logits: Tensor, features: Tensor) -> Tensor:
        """Plain mean before `start_epoch`; then `sum w_i l_i / sum w_i` with the normaliser detached."""
        if not self.active:
            return losses.mean()
        w = self.example_weights(targets, logits, features).to(losses.dtype)
        if self.detach:
            w = w.detach()
        return (w * losses).sum() / w.sum().detach()
