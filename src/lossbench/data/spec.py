"""The one object every dataset builder returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from lossbench.tasks.base import Task


@dataclass(frozen=True)
class Split:
    """One split held as tensors: inputs `x` (N, *input_shape) float32 and targets `y` (N,).

    `y` has the dtype of the task's targets (int64 labels for classification, float32 for regression).
    """

    x: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} rows but y has {len(self.y)}")

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class DataSpec:
    """A dataset ready for training: three tensor splits plus the statistics recipes need.

    Attributes:
        name: Dataset name as recorded in the store.
        train: Training split (long-tailed or noisy as configured).
        val: Validation split used for model selection (balanced where the builder can).
        test: Test split; never used for selection.
        task: What the targets are (`lossbench.tasks`): kind, output width, groups (classes or label
            bins) with their training counts (`sum(task.group_counts) == len(train)`), metrics.
        input_shape: Shape of one example, e.g. (64,) or (1, 28, 28).
        meta: Provenance recorded with each run (counts, index hash, data seed, ...).
        augment: Optional batch transform applied to training batches on the device.
    """

    name: str
    train: Split
    val: Split
    test: Split
    task: Task
    input_shape: tuple[int, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)
    augment: Callable[[Tensor], Tensor] | None = None

    def __post_init__(self) -> None:
        if sum(self.task.group_counts) != len(self.train):
            raise ValueError(
                f"group counts sum to {sum(self.task.group_counts)} but train has {len(self.train)}"
            )
        for name in ("train", "val", "test"):
            dtype = getattr(self, name).y.dtype
            if dtype != self.task.target_dtype:
                raise ValueError(
                    f"{name} targets are {dtype}, a {self.task.kind} task needs {self.task.target_dtype}"
                )

    @property
    def num_classes(self) -> int:
        """Number of groups: classes for classification (label bins for regression)."""
        return self.task.num_groups

    @property
    def class_counts(self) -> tuple[int, ...]:
        """Training examples per group (per class for classification)."""
        return self.task.group_counts
