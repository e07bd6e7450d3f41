"""A Gaussian mixture with any number of classes and dimensions, made long-tailed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lossbench.data.base import Dataset
from lossbench.data.spec import DataSpec


class Synthetic(Dataset):
    """Class c draws x ~ N(mu_c, I) in `dim` dimensions; the means are random with norm `separation`.

    Each class gets `n_max + val_per_class + test_per_class` points, then the split recipe of
    `longtail_spec` applies (balanced test and validation, long-tailed train with head count `n_max`).

    Args:
        num_classes: Number of classes (>= 2).
        dim: Input dimension (>= 1).
        n_max: Training examples of the head class.
        imbalance_ratio: n_max / n_min (>= 1).
        profile: ``"exp"`` or ``"step"``.
        separation: Norm of each class mean; larger is easier.
        val_per_class: Validation examples per class.
        test_per_class: Test examples per class.
        noise: Label noise `{kind, rate, clean_val}` (see `lossbench.data.noise.LabelNoise`).
        data_seed: Seed for the means, the points and the splits.
    """

    def __init__(
        self,
        num_classes: int = 5,
        dim: int = 16,
        n_max: int = 200,
        imbalance_ratio: float = 10.0,
        profile: str = "exp",
        separation: float = 3.0,
        val_per_class: int = 20,
        test_per_class: int = 100,
        data_seed: int = 0,
        noise: Mapping[str, Any] | None = None,
    ) -> None:
        self.set_recipe(imbalance_ratio, profile, val_per_class, data_seed, noise, test_per_class)
        if num_classes < 2 or dim < 1 or n_max < 1:
            raise ValueError(
                f"need num_classes >= 2, dim >= 1, n_max >= 1; got {num_classes}, {dim}, {n_max}"
            )
        if separation < 0:
            raise ValueError(f"separation must be >= 0, got {separation}")
        self.num_classes, self.dim, self.n_max, self.separation = num_classes, dim, n_max, separation

    def build(self) -> DataSpec:
        """Draw the mixture and cut the splits."""
        rng = np.random.default_rng(self.data_seed)
        means = rng.standard_normal((self.num_classes, self.dim))
        means *= self.separation / np.linalg.norm(means, axis=1, keepdims=True)
        per_class = self.n_max + self.val_per_class + self.test_per_class
        y = np.repeat(np.arange(self.num_classes), per_class)
        x = (means[y] + rng.standard_normal((len(y), self.dim))).astype("float32")
        return self.cut_longtail("synthetic", x, y, self.num_classes, n_max=self.n_max)
