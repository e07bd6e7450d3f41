"""Class-balanced sigmoid focal loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.losses.base import Loss, counts_tensor
from lossbench.losses.multilabel import multilabel_targets
from lossbench.tasks.base import Task


class ClassBalancedSigmoidFocalLoss(Loss):
    """Class-balanced sigmoid focal loss (Cui et al., CVPR 2019), as in the authors' TF code.

    Class weights are inverse effective numbers, `w_c = (1 - beta) / (1 - beta^n_c)`, normalised to
    sum to C (richardaecn/class-balanced-loss, `cifar_main.py`). Each example's weight is the sum of
    the weights of its positive classes (`w_y` for a single label) and multiplies all its C binary
    focal terms `(1 - p_t)^gamma * BCE(z_c, t_c)` (no alpha balancing: the class weights replace it).
    The reference divides the batch sum by the number of positive labels, which for single-label
    data is the mean over examples of the per-example values returned here. `beta=0` gives unit
    weights (plain sigmoid focal loss with `alpha<0`); `gamma=0` is class-balanced sigmoid BCE.
    Defaults are the reference script's (`beta=0.9999, gamma=1.0`).

    Bias initialisation: the reference initialises the classifier bias to `b = -log(C - 1)` (so that
    every class starts at p = 1/C instead of 1/2, where the C - 1 negatives would dominate) and
    exempts that bias from weight decay. A loss cannot initialise the model, and the `Loss` contract
    gives it no access to the head; with `prior_bias=true` the loss adds the same constant
    `-log(C - 1)` to every logit before the sigmoid. This is equivalent to initialising the head bias
    at (its default init) - log(C - 1) for training, and it leaves evaluation untouched, since a shift
    common to all classes changes neither the argmax nor the softmax. The difference: our weight decay
    pulls the learnt bias toward 0, i.e. the effective bias toward -log(C - 1), while the reference has
    no decay on it. `prior_bias=false` trains from the model's own bias init.

    Args:
        beta: Effective-number hyper-parameter, in [0, 1).
        gamma: Focusing parameter (>= 0).
        prior_bias: Add `-log(C - 1)` to the logits (the reference's bias init, see above).
    """

    class_weights: Tensor

    def __init__(self, beta: float = 0.9999, gamma: float = 1.0, prior_bias: bool = True) -> None:
        super().__init__()
        if not 0 <= beta < 1:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        if not gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.beta, self.gamma, self.prior_bias = float(beta), float(gamma), bool(prior_bias)
        self.register_buffer("class_weights", torch.zeros(0))

    def fit(self, task: Task, targets: Tensor) -> None:
        """Compute the class weights from the effective numbers of the training counts."""
        class_counts = task.group_counts
        counts = counts_tensor(class_counts)
        weights = (1.0 - self.beta) / (1.0 - self.beta**counts)
        self.class_weights = (weights / weights.sum() * len(counts)).float()

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        num_classes = logits.shape[1]
        if self.class_weights.numel() != num_classes:
            raise RuntimeError("ClassBalancedSigmoidFocalLoss.fit(class_counts) must be called before use")
        t = multilabel_targets(targets, logits)
        if self.prior_bias and num_classes > 1:
            logits = logits - math.log(num_classes - 1)
        ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
        # (1 - p_t)^gamma in log space: 1 - p_t = sigmoid(-z) for positives, sigmoid(z) for negatives
        modulator = torch.exp(self.gamma * F.logsigmoid(logits * (1.0 - 2.0 * t)))
        weight = t @ self.class_weights.to(logits.dtype)
        return weight * (modulator * ce).sum(dim=1)
