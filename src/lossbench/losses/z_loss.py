"""The Z-loss of the spherical family."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lossbench.losses.base import Loss

VAR_EPS = 1e-12  # keeps the standardisation finite when all logits of an example are equal


class ZLoss(Loss):
    """Z-loss (de Brébisson & Vincent, 2016, arXiv:1604.08859): `softplus(a (b - z_y)) / a`.

    The logits of each example are Z-normalised, `z_c = (o_c - mu) / sigma` with `mu` and `sigma` the
    mean and (population) standard deviation of the C logits, so the loss depends on the logits only
    through `sum o`, `sum o^2` and `o_y` (the spherical family of their ICLR 2016 paper, "An
    Exploration of Softmax Alternatives Belonging to the Spherical Loss Family") and is invariant
    to shifting them and to scaling them by a positive factor. `b` sets how far above the mean the target must be (`z_y` is at most
    `sqrt(C - 1)`) and `a` how sharply the loss saturates past it.

    Which Z-loss: this is *not* the auxiliary `z_loss = 1e-4 * log^2 Z` of PaLM / Mesh-TensorFlow (a
    penalty that keeps the softmax normaliser near 1 and is added to cross-entropy); the benchmark
    compares stand-alone classification losses, and the issue names de Brébisson & Vincent's
    spherical-family loss. The paper tunes (a, b) per task and gives no universal default; `a=1, b=2`
    are ours, chosen so that the target (`z_y <= sqrt(C - 1)`, e.g. 3 for C=10) can pass `b`.
    `sigma` is `sqrt(var + 1e-12)` so that equal logits give `z = 0` instead of NaN.

    Args:
        a: Sharpness of the softplus (> 0).
        b: Location: the normalised target score the loss aims past.
    """

    def __init__(self, a: float = 1.0, b: float = 2.0) -> None:
        super().__init__()
        if not a > 0:
            raise ValueError(f"a must be > 0, got {a}")
        self.a, self.b = float(a), float(b)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        centred = logits - logits.mean(dim=1, keepdim=True)
        sigma = (centred.square().mean(dim=1) + VAR_EPS).sqrt()
        z_y = centred.gather(1, targets[:, None]).squeeze(1) / sigma
        return F.softplus(self.a * (self.b - z_y)) / self.a
