"""Scalar regression: float targets, one output, groups = label bins."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from lossbench.metrics.regression import regression_metrics
from lossbench.tasks.base import REGRESSION, Task


class RegressionTask(Task):
    """One float target per example, one model output; recipes balance over B label bins.

    Bin b holds targets in `[edges[b], edges[b+1])` (the last bin is closed); targets outside the
    edges fall into the first or last bin. `group_counts` are the training examples per bin. The
    default selection metric is `val/mae` (lower is better).

    Args:
        bin_edges: B + 1 increasing edges, in target units.
        bin_counts: Training examples per bin (length B).
        many_threshold: Default many-shot threshold (a bin with more training examples).
        few_threshold: Default few-shot threshold (a bin with fewer training examples).
    """

    kind: ClassVar[str] = REGRESSION
    target_dtype: ClassVar[torch.dtype] = torch.float32
    select_metric: ClassVar[str] = "val/mae"

    def __init__(
        self,
        bin_edges: tuple[float, ...] | list[float],
        bin_counts: tuple[int, ...] | list[int],
        many_threshold: int,
        few_threshold: int,
    ) -> None:
        super().__init__(bin_counts, many_threshold, few_threshold)
        edges = torch.as_tensor(list(bin_edges), dtype=torch.float64)
        if len(edges) != self.num_groups + 1 or not bool((edges[1:] > edges[:-1]).all()):
            raise ValueError(f"need {self.num_groups + 1} increasing bin edges, got {list(bin_edges)}")
        self.bin_edges = tuple(float(e) for e in edges)
        self._inner = edges[1:-1].float()

    @property
    def output_width(self) -> int:
        """One prediction per example."""
        return 1

    @property
    def bin_centers(self) -> Tensor:
        """Mid-points (B,) float64 of the bins."""
        edges = torch.tensor(self.bin_edges, dtype=torch.float64)
        return (edges[1:] + edges[:-1]) / 2

    def groups(self, targets: Tensor) -> Tensor:
        """Bin index (N,) int64 of each target (N,)."""
        return torch.bucketize(targets.float(), self._inner.to(targets.device), right=True)

    def metrics(
        self, outputs: Tensor, targets: Tensor, many_threshold: int, few_threshold: int, **options: Any
    ) -> dict[str, Any]:
        """`regression_metrics` of outputs (N, 1)."""
        return regression_metrics(
            outputs.reshape(-1), targets, self.groups(targets.cpu()), list(self.group_counts),
            many_threshold, few_threshold,
        )  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """Kind, bin edges and training counts per bin."""
        return {**super().describe(), "bin_edges": list(self.bin_edges)}
