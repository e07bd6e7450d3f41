"""Generalized cross-entropy."""

from __future__ import annotations

from torch import Tensor

from lossbench.losses.base import Loss
from lossbench.losses.robust import clamped_probs


class GCELoss(Loss):
    """Generalized cross-entropy (Zhang & Sabuncu, NeurIPS 2018): `(1 - p_y^q) / q`.

    The negative Box-Cox transform of `p_y`: `q -> 0` approaches cross-entropy and `q = 1` is MAE
    (`1 - p_y`). The default `q=0.7` is the paper's. As in the APL reference code, `p` is clamped to
    [1e-7, 1] first. This is the untruncated loss (the paper's truncated `L_q` variant with
    per-example pruning is not implemented).

    Args:
        q: Box-Cox exponent, in (0, 1].
    """

    def __init__(self, q: float = 0.7) -> None:
        super().__init__()
        if not 0.0 < q <= 1.0:
            raise ValueError(f"q must be in (0, 1], got {q}")
        self.q = float(q)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        p_y = clamped_probs(logits).gather(1, targets[:, None]).squeeze(1)
        return (1.0 - p_y**self.q) / self.q
