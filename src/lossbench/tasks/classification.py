"""Single-label classification: integer labels, one logit per class, groups = classes."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from lossbench.metrics.functional import classification_metrics, classification_metrics_stacked
from lossbench.tasks.base import CLASSIFICATION, Task


class ClassificationTask(Task):
    """C classes: targets (N,) int64 in [0, C), outputs are logits (N, C), group c = class c.

    Metrics are those of `classification_metrics` (accuracy, balanced accuracy, macro F1, NLL, ECE,
    many/medium/few-shot accuracy, ...); the default selection metric is `val/acc` (higher is better).
    Many/medium/few: classes with more than 100 / fewer than 20 training examples by default.

    Args:
        class_counts: Training examples per class (length C).
        many_threshold: Default many-shot threshold (a class with more training examples).
        few_threshold: Default few-shot threshold (a class with fewer training examples).
    """

    kind: ClassVar[str] = CLASSIFICATION
    target_dtype: ClassVar[torch.dtype] = torch.int64
    select_metric: ClassVar[str] = "val/acc"

    def __init__(
        self, class_counts: tuple[int, ...] | list[int], many_threshold: int = 100, few_threshold: int = 20
    ) -> None:
        super().__init__(class_counts, many_threshold, few_threshold)

    @property
    def num_classes(self) -> int:
        """Number of classes C."""
        return self.num_groups

    @property
    def output_width(self) -> int:
        """One logit per class."""
        return self.num_groups

    def groups(self, targets: Tensor) -> Tensor:
        """The labels themselves (the same tensor)."""
        return targets

    def metrics(
        self, outputs: Tensor, targets: Tensor, many_threshold: int, few_threshold: int, **options: Any
    ) -> dict[str, Any]:
        """`classification_metrics` of logits (N, C); `options` may set `ece_bins`."""
        return classification_metrics(
            outputs, targets, self.group_counts, many_threshold, few_threshold, options.get("ece_bins", 15)
        )

    def metrics_stacked(
        self, outputs: Tensor, targets: Tensor, many_threshold: int, few_threshold: int, **options: Any
    ) -> list[dict[str, Any]]:
        """`classification_metrics_stacked` of logits (K, N, C): the K models' metrics in one batched pass."""
        return classification_metrics_stacked(
            outputs, targets, self.group_counts, many_threshold, few_threshold, options.get("ece_bins", 15)
        )


def classification_stats(class_counts: tuple[int, ...] | list[int]) -> tuple[ClassificationTask, Tensor]:
    """A task and training labels (sorted, `class_counts[c]` copies of c) with the given counts.

    For fitting a recipe from class counts alone (the `build_*` helpers, tests).
    """
    counts = torch.as_tensor(list(class_counts), dtype=torch.int64)
    return ClassificationTask(tuple(class_counts)), torch.repeat_interleave(torch.arange(len(counts)), counts)
