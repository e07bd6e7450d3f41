"""Multi-label classification: a binary target vector per example, one sigmoid logit per label."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from lossbench.metrics.multilabel import multilabel_metrics
from lossbench.tasks.base import MULTILABEL, Task


class MultiLabelTask(Task):
    """C labels: targets (N, C) float32 in {0, 1}, outputs are logits (N, C).

    `label_counts` are the training positives per label (what class-balanced multi-label losses
    read). Groups, for recipes that balance one group per example: an example belongs to its rarest
    positive label (fewest training positives; label 0 if it has none), so `group_counts` sum to
    the training size. Metrics: `multilabel_metrics` (mAP, micro/macro F1, CP/CR/CF1/OP/OR/OF1);
    selection on `val/map`.

    Args:
        label_counts: Training positives per label (length C).
        group_counts: Training examples per group (rarest positive label), length C.
    """

    kind: ClassVar[str] = MULTILABEL
    target_dtype: ClassVar[torch.dtype] = torch.float32
    select_metric: ClassVar[str] = "val/map"

    def __init__(
        self, label_counts: tuple[int, ...] | list[int], group_counts: tuple[int, ...] | list[int]
    ) -> None:
        super().__init__(group_counts, many_threshold=100, few_threshold=20)
        self.label_counts = tuple(int(c) for c in label_counts)

    @classmethod
    def from_targets(cls, targets: Tensor) -> MultiLabelTask:
        """The task of training targets (N, C)."""
        counts = targets.sum(0).long()
        task = cls(counts.tolist(), [1] * targets.shape[1])
        groups = task.groups(targets)
        return cls(counts.tolist(), torch.bincount(groups, minlength=targets.shape[1]).tolist())

    @property
    def output_width(self) -> int:
        """One logit per label."""
        return len(self.label_counts)

    def groups(self, targets: Tensor) -> Tensor:
        """The rarest positive label of each example (N,) int64 (0 when none is positive)."""
        counts = torch.as_tensor(self.label_counts, dtype=torch.float64, device=targets.device)
        rarity = torch.where(targets.bool(), counts, torch.full_like(counts, float("inf")))
        return rarity.argmin(dim=1)

    def metrics(
        self, outputs: Tensor, targets: Tensor, many_threshold: int, few_threshold: int, **options: Any
    ) -> dict[str, Any]:
        """`multilabel_metrics` of logits (N, C)."""
        return multilabel_metrics(outputs, targets)

    def describe(self) -> dict[str, Any]:
        """Kind, group counts and positives per label."""
        return {**super().describe(), "label_counts": list(self.label_counts)}
