"""Mean absolute error on softmax probabilities."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from lossbench.losses.base import Loss


class MAELoss(Loss):
    """MAE (Ghosh et al., AAAI 2017), in the APL reference's "reduced" form: `1 - p_y`.

    The textbook MAE between the softmax output and the one-hot label is `sum_c |p_c - q_c| =
    2 (1 - p_y)`; the Active-Passive-Losses reference code (Ma et al., ICML 2020), whose defaults the
    benchmark follows, uses `1 - p_y` (scale 1), i.e. half of it. MAE is symmetric, hence robust to
    label noise, but its gradient with respect to the logits carries a factor `p_y`, which vanishes
    for hard examples, so it is known to underfit, especially with many classes (Zhang & Sabuncu
    2018). No clamping, as in the
    reference.
    """

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        p_y = F.softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
        return 1.0 - p_y
