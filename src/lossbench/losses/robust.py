"""Shared pieces of the label-noise-robust losses, following the APL reference code.

Ma et al. (ICML 2020, "Normalized Loss Functions for Deep Learning with Noisy Labels") published
their implementation in github.com/HanxunH/Active-Passive-Losses (`loss.py`); `sce`, `nce_rce`,
`gce` and `mae` follow its numerics: probabilities are clamped to [1e-7, 1] where the reference
clamps them, and the reverse cross-entropy uses log(0) := log(1e-4) = A = -4 ln 10.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor

PROB_MIN = 1e-7  # probability clamp of the reference code (RCE and GCE)
LOG_ZERO = math.log(1e-4)  # log 0 := log 1e-4 in RCE, i.e. A = -9.21 (Wang et al. 2019)


def clamped_probs(logits: Tensor) -> Tensor:
    """Softmax probabilities (N, C) clamped to [1e-7, 1], as the reference does before RCE and GCE."""
    return F.softmax(logits, dim=1).clamp(min=PROB_MIN, max=1.0)


def reverse_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """RCE (Wang et al., ICCV 2019) per example: `-sum_c p_c log q_c` with `q = onehot(y)`, log 0 := log 1e-4.

    Equals `-log(1e-4) * sum_{c != y} clamp(p_c, 1e-7, 1)`; the target term vanishes (log 1 = 0).
    """
    p = clamped_probs(logits)
    off_target = p.sum(dim=1) - p.gather(1, targets[:, None]).squeeze(1)
    return -LOG_ZERO * off_target
