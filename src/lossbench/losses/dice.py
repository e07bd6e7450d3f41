"""Self-adjusting Dice loss."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lossbench.losses.base import Loss


class DiceLoss(Loss):
    """Self-adjusting Dice loss (Li et al., ACL 2020, "Dice Loss for Data-imbalanced NLP Tasks").

    Per example and class, with `p_c = softmax(z)_c`, `y_c = onehot(y)_c` and the self-adjusted
    probability `q_c = (1 - p_c)^alpha * p_c`, the Dice coefficient is
    `DSC_c = (2 q_c y_c + gamma) / (q_c + y_c + gamma)`, and the loss is `sum_c (1 - DSC_c)`.

    Convention (references differ): the authors' code (ShannonAI/dice_loss_for_NLP, `DiceLoss`) sums
    the per-class Dice losses over classes like this, but takes the denominator's sums over the whole
    batch, which couples the examples of a batch and does not fit the per-example contract. This is
    the per-example form of the paper's equation applied one-vs-rest to every class, i.e. their
    multi-class loss on a batch of one example (non-squared denominator). `gamma` is the paper's
    smoothing term (the code's `smooth`); it gives negative classes (y_c = 0) the loss
    `q_c / (q_c + gamma)`. Defaults: `alpha=0.01` is the authors' training-script default (the ACL
    paper writes the factor as `(1 - p)`, i.e. alpha=1, under which a confident correct prediction,
    q_y -> 0, is penalised as much as a wrong one); `gamma=1` is ours (the code's `smooth=1e-4` is
    meant for batch-level sums, where it is negligible). `alpha=0` is plain per-example soft Dice.
    `(1 - p)` is floored at 1e-12 so the gradient of `(1 - p)^alpha` stays finite at p = 1.

    Known behaviour: the negative-class terms are concave in `q_c`, so under a softmax it is cheaper
    to put all non-target mass on one class; with SGD on long-tailed data the model can collapse to
    predicting the head class (seen on `digits`). The batch-level form of the reference penalises that
    through its pooled denominators; the per-example form cannot.

    Args:
        alpha: Exponent of the self-adjusting factor `(1 - p)` (>= 0).
        gamma: Smoothing added to numerator and denominator (> 0).
    """

    def __init__(self, alpha: float = 0.01, gamma: float = 1.0) -> None:
        super().__init__()
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if not gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.alpha, self.gamma = float(alpha), float(gamma)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        p = F.softmax(logits, dim=1)
        y = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
        q = (1.0 - p).clamp(min=1e-12) ** self.alpha * p
        dsc = (2.0 * q * y + self.gamma) / (q + y + self.gamma)
        return (1.0 - dsc).sum(dim=1)
