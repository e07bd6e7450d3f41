"""Class-balanced weighting by the effective number of samples."""

from __future__ import annotations

from torch import Tensor

from lossbench.limits import Limit
from lossbench.weighting.base import ClassWeighting, check_beta, effective_number_weights


class EffectiveNumberWeighting(ClassWeighting):
    """Class-balanced loss weights (Cui et al., CVPR 2019): `w_c ∝ (1 - beta) / (1 - beta^n_c)`.

    `beta=0` gives uniform weights, `beta -> 1` approaches inverse frequency. Normalised to sum to C,
    as in the authors' code.

    Args:
        beta: Hyper-parameter in [0, 1); the paper uses 0.9, 0.99, 0.999 or 0.9999.
    """

    limits = (Limit(equals="none", params={"beta": 0.0}),)  # checked by `lossbench check` (lossbench.limits)

    def __init__(self, beta: float = 0.9999) -> None:
        super().__init__()
        check_beta(beta)
        self.beta = float(beta)

    def compute_weights(self, counts: Tensor) -> Tensor:
        """Inverse effective numbers."""
        return effective_number_weights(counts, self.beta)
