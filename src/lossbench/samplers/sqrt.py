"""Square-root sampling."""

from __future__ import annotations

from torch import Tensor

from lossbench.samplers.by_class import ClassProbabilitySampler


class SquareRootSampler(ClassProbabilitySampler):
    """Class probability `p_c ∝ n_c^(1/2)` (Kang et al., ICLR 2020, q = 1/2; Mahajan et al. 2018)."""

    def class_probabilities(self, epoch: int) -> Tensor:
        """`sqrt(n_c) / sum_k sqrt(n_k)`."""
        root = self.class_counts.double().sqrt()
        return root / root.sum()
