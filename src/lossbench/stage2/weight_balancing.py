"""Weight balancing: classifier fine-tuning with MaxNorm and class-balanced loss weights."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lossbench.data.spec import DataSpec
from lossbench.losses.cross_entropy import CrossEntropyLoss
from lossbench.models.base import Classifier
from lossbench.samplers.instance import InstanceSampler
from lossbench.stage2.base import Stage2, check_linear_head, check_positive, linear_head, stage2_trainer
from lossbench.tasks.base import prepare
from lossbench.train.config import TrainerConfig
from lossbench.train.evaluate import Evaluator
from lossbench.train.loop import FitResult, fit
from lossbench.weighting.base import check_beta
from lossbench.weighting.effective_number import EffectiveNumberWeighting


def maxnorm_radius(weight: Tensor, thresh: float) -> float:
    """`min_c ||w_c|| + thresh * (max_c ||w_c|| - min_c ||w_c||)` over the rows of (C, D) `weight`."""
    norms = weight.detach().norm(dim=1)
    return float(norms.min() + thresh * (norms.max() - norms.min()))


@torch.no_grad()
def project_maxnorm(weight: Tensor, radius: float) -> None:
    """Scale in place every row of `weight` whose L2 norm exceeds `radius` back onto the ball."""
    norms = weight.norm(dim=1, keepdim=True)
    weight.mul_(torch.where(norms > radius, radius / norms, torch.ones_like(norms)))


class MaxNormProjection:
    """Epoch-end hook: projects the rows of `weight` onto the MaxNorm ball of `radius` after each epoch.

    The loop calls `on_epoch_end` after the epoch's last optimizer step and before evaluation, where
    the reference (`MaxNorm_via_PGD`) projects.
    """

    def __init__(self, weight: Tensor, radius: float) -> None:
        self.weight, self.radius = weight, radius

    def on_epoch_end(self, epoch: int, model: nn.Module) -> None:
        """Project the class weight rows."""
        project_maxnorm(self.weight, self.radius)


class WeightBalancing(Stage2):
    """Weight balancing, second stage (Alshammari et al., CVPR 2022), as in their reference code.

    Stage 1 is the normal training with a tuned weight decay: set `trainer.weight_decay` as in the
    paper (5e-3 in the reference's CIFAR100-LT demo, with lr 0.01). Stage 2 (github
    ShadeAlsha/LTR-weight-balancing, `demo2`) fine-tunes the stage-1 linear classifier (weights and
    bias; not re-initialised) with everything else frozen, for `epochs` (10) with SGD, a cosine
    schedule from `lr`, weight decay `weight_decay` (0.1), instance sampling, class-balanced loss
    weights (effective number, `beta` 0.9999), and MaxNorm: after each epoch's last step every class
    weight row is projected onto the L2 ball of radius `min + thresh * (max - min)` of the stage-1
    row norms (`MaxNorm_via_PGD`, thresh 0.1; the bias is unconstrained).

    One departure: the reference's class-balanced loss (`CB_loss(..., "softmax")`, a third-party
    port) applies binary cross-entropy to softmax outputs; we use the class-balanced softmax
    cross-entropy of Cui et al. (2019), `sum_i w_{y_i} CE_i / sum_i w_{y_i}`.

    Args:
        epochs: Fine-tuning epochs (>= 1).
        lr: Initial learning rate (> 0); the reference uses its stage-1 rate.
        weight_decay: Stage-2 weight decay (>= 0).
        thresh: MaxNorm radius position between the smallest and largest row norm, in [0, 1].
        beta: Effective-number hyper-parameter of the class weights, in [0, 1).
        head: The model's head kind, interpolated from the model config (a cosine head is rejected).
    """

    def __init__(self, epochs: int = 10, lr: float = 0.01, weight_decay: float = 0.1, thresh: float = 0.1,
                 beta: float = 0.9999, head: str = "linear") -> None:  # fmt: skip
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        check_positive(lr=lr)
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if not 0.0 <= thresh <= 1.0:
            raise ValueError(f"thresh must be in [0, 1], got {thresh}")
        check_beta(beta)
        check_linear_head(head, "weight_balancing")
        self.epochs, self.lr, self.weight_decay = int(epochs), float(lr), float(weight_decay)
        self.thresh, self.beta = float(thresh), float(beta)

    def apply(
        self, model: Classifier, data: DataSpec, trainer: TrainerConfig, seed: int, evaluator: Evaluator
    ) -> FitResult:
        """Freeze all but the classifier; fine-tune it under MaxNorm with class-balanced weights."""
        head: nn.Linear = linear_head(model, "weight_balancing")
        model.requires_grad_(False)
        head.requires_grad_(True)
        radius = maxnorm_radius(head.weight, self.thresh)
        loss, weighting, sampler = CrossEntropyLoss(), EffectiveNumberWeighting(self.beta), InstanceSampler()
        prepare(data.task, data.train.y, loss, weighting, sampler)
        cfg = stage2_trainer(trainer, self.epochs, self.lr, self.weight_decay)
        hook = MaxNormProjection(head.weight, radius)
        return fit(model, loss, weighting, sampler, data, cfg, seed=seed, evaluator=evaluator, hooks=[hook])
