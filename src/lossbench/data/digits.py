"""scikit-learn's 8x8 handwritten digits (offline), made long-tailed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sklearn.datasets import load_digits

from lossbench.data.base import Dataset
from lossbench.data.spec import DataSpec


class Digits(Dataset):
    """1,797 8x8 digit images (10 classes, 174-183 each), pixel values scaled to [0, 1].

    Balanced test (`test_per_class`) and validation (`val_per_class`) splits are cut first; the rest is
    made long-tailed with `longtail_counts(n_max, 10, imbalance_ratio, profile)`, where n_max is the
    smallest per-class count left (114 with the defaults).

    Args:
        imbalance_ratio: n_max / n_min of the training split (>= 1).
        profile: ``"exp"`` or ``"step"``.
        val_per_class: Validation examples per class.
        test_per_class: Test examples per class.
        noise: Label noise `{kind, rate, clean_val}` (see `lossbench.data.noise.LabelNoise`).
        data_seed: Seed for which examples land in which split (independent of the training seed).
    """

    def __init__(
        self,
        imbalance_ratio: float = 10.0,
        profile: str = "exp",
        val_per_class: int = 20,
        test_per_class: int = 40,
        data_seed: int = 0,
        noise: Mapping[str, Any] | None = None,
    ) -> None:
        self.set_recipe(imbalance_ratio, profile, val_per_class, data_seed, noise, test_per_class)

    def build(self) -> DataSpec:
        """Load the digits and cut the splits."""
        bunch = load_digits()
        x = (bunch.data / 16.0).astype("float32")
        return self.cut_longtail("digits", x, bunch.target.astype("int64"), 10)
