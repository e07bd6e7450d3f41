"""Label-distribution-aware margin loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lossbench.limits import Limit
from lossbench.losses.base import Loss, counts_tensor
from lossbench.tasks.base import Task


class LDAMLoss(Loss):
    """LDAM loss (Cao et al., NeurIPS 2019), as in the authors' reference code.

    Margins `m_c = max_m * (n_c / n_min)^(-1/4)`, so the rarest class gets `max_m`. The margin is
    subtracted from the target logit only, then all logits are multiplied by `s`, then cross-entropy:
    `CE(s * (z - m_y e_y), y)`. `max_m=0, s=1` recovers cross-entropy.

    Args:
        max_m: Largest margin, given to the rarest class (>= 0).
        s: Logit scale (> 0); the reference uses 30.
    """

    limits = (
        Limit(equals="ce", params={"max_m": 0.0, "s": 1.0}),
    )  # checked by `lossbench check` (lossbench.limits)

    margins: Tensor

    def __init__(self, max_m: float = 0.5, s: float = 30.0) -> None:
        super().__init__()
        if not max_m >= 0:
            raise ValueError(f"max_m must be >= 0, got {max_m}")
        if not s > 0:
            raise ValueError(f"s must be > 0, got {s}")
        self.max_m, self.s = float(max_m), float(s)
        self.logit_scale = self.s  # evaluation scores softmax(s * z), the distribution LDAM trains
        self.register_buffer("margins", torch.zeros(0))
        # accepted (the documented margin-free case) but rarely meant: the run records this note
        self.config_warnings = (
            (f"max_m=0: no margins, so this is cross-entropy on {self.s:g}-scaled logits, not LDAM",)
            if self.max_m == 0
            else ()
        )

    def fit(self, task: Task, targets: Tensor) -> None:
        """Compute the per-class margins from the training counts."""
        class_counts = task.group_counts
        m = counts_tensor(class_counts) ** -0.25
        self.margins = (m * (self.max_m / m.max())).float()

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        if self.margins.numel() != logits.shape[1]:
            raise RuntimeError("LDAMLoss.fit(class_counts) must be called before use")
        # subtract m_y from the target logit only (a scatter: one (N, C) temporary instead of a one-hot product)
        margin = torch.zeros_like(logits).scatter_(
            1, targets[:, None], self.margins.to(logits.dtype)[targets, None]
        )
        return F.cross_entropy(self.s * (logits - margin), targets, reduction="none")
