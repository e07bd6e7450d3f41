"""Inverse (power) class-frequency weighting."""

from __future__ import annotations

from torch import Tensor

from lossbench.limits import Limit
from lossbench.weighting.base import ClassWeighting


class InverseFrequencyWeighting(ClassWeighting):
    """Class weights `w_c ∝ n_c^-power`, normalised to sum to C.

    Args:
        power: 1 = inverse frequency, 0.5 = inverse square root, 0 = no weighting (>= 0).
    """

    limits = (Limit(equals="none", params={"power": 0.0}),)  # checked by `lossbench check` (lossbench.limits)

    def __init__(self, power: float = 1.0) -> None:
        super().__init__()
        if not power >= 0:
            raise ValueError(f"power must be >= 0, got {power}")
        self.power = float(power)

    def compute_weights(self, counts: Tensor) -> Tensor:
        """n_c^-power."""
        return counts.pow(-self.power)
