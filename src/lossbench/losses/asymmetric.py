"""Asymmetric loss (multi-label)."""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.losses.base import Loss
from lossbench.losses.multilabel import multilabel_targets
from lossbench.tasks.base import CLASSIFICATION, MULTILABEL

EPS = 1e-8  # probability clamp before the log, the reference's default `eps`


class AsymmetricLoss(Loss):
    """Asymmetric loss, ASL (Ridnik et al., ICCV 2021), as the reference `AsymmetricLoss`.

    Per class, with `p = sigmoid(z)` and the shifted probability of a negative
    `p_m = max(p - clip, 0)` (the reference clips `1 - p + clip` at 1):
    positives `-(1 - p)^gamma_pos * log(max(p, eps))`, negatives
    `-p_m^gamma_neg * log(max(1 - p_m, eps))`, summed over classes (the reference sums over the whole
    batch; the mean over examples here is that sum / N). As in the authors' training script
    (Alibaba-MIIL/ASL, `disable_torch_grad_focal_loss=True`), the focusing weights are constants for
    back-propagation. Defaults are the paper's recommended `gamma_neg=4, gamma_pos=0, clip=0.05`.
    Class counts are ignored. Targets as in `bce`.

    Args:
        gamma_neg: Focusing parameter of negatives (>= 0).
        gamma_pos: Focusing parameter of positives (>= 0).
        clip: Probability margin of negatives, in [0, 1); 0 disables it.
    """

    task_kinds = (CLASSIFICATION, MULTILABEL)

    def __init__(self, gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05) -> None:
        super().__init__()
        if not (gamma_neg >= 0 and gamma_pos >= 0):
            raise ValueError(f"gamma_neg and gamma_pos must be >= 0, got {gamma_neg}, {gamma_pos}")
        if not 0 <= clip < 1:
            raise ValueError(f"clip must be in [0, 1), got {clip}")
        self.gamma_neg, self.gamma_pos, self.clip = float(gamma_neg), float(gamma_pos), float(clip)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        t = multilabel_targets(targets, logits)
        p = torch.sigmoid(logits)
        p_neg = 1.0 - p  # probability of "absent"
        if self.clip > 0:
            p_neg = (p_neg + self.clip).clamp(max=1.0)
        log_lik = t * p.clamp(min=EPS).log() + (1.0 - t) * p_neg.clamp(min=EPS).log()
        if self.gamma_neg > 0 or self.gamma_pos > 0:
            with torch.no_grad():
                p_t = p * t + p_neg * (1.0 - t)
                weight = (1.0 - p_t) ** (self.gamma_pos * t + self.gamma_neg * (1.0 - t))
            log_lik = log_lik * weight
        return -log_lik.sum(dim=1)
