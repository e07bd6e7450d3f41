"""The one object every dataset builder returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor


@dataclass(frozen=True)
class Split:
    """One split held as tensors: inputs `x` (N, *input_shape) float32 and labels `y` (N,) int64."""

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
        num_classes: Number of classes C.
        class_counts: Per-class training counts (length C); `sum(class_counts) == len(train)`.
        input_shape: Shape of one example, e.g. (64,) or (1, 28, 28).
        meta: Provenance recorded with each run (counts, index hash, data seed, ...).
        augment: Optional batch transform applied to training batches on the device.
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    class_counts: tuple[int, ...]
    input_shape: tuple[int, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)
    augment: Callable[[Tensor], Tensor] | None = None

    def __post_init__(self) -> None:
        if len(self.class_counts) != self.num_classes:
            raise ValueError(f"{len(self.class_counts)} class counts for {self.num_classes} classes")
        if sum(self.class_counts) != len(self.train):
            raise ValueError(f"class counts sum to {sum(self.class_counts)} but train has {len(self.train)}")
