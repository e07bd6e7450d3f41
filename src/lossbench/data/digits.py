"""scikit-learn's 8x8 handwritten digits (offline), made long-tailed."""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

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
        pixels, labels = digits_arrays()
        x = (pixels / 16.0).astype("float32")
        return self.cut_longtail("digits", x, labels.astype("int64"), 10)


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as `load_digits` returns them: pixels (1797, 64) float64 in 0..16, labels (1797,).

    Read from the CSV file scikit-learn ships, without importing scikit-learn (about 1 s of every
    digits run's start-up); `sklearn.datasets.load_digits` where that file is not where it used to be.
    """
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.data, bunch.target
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    return table[:, :-1], table[:, -1].astype(int)
