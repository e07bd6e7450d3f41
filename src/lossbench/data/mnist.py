"""MNIST and Fashion-MNIST (28x28, 1 channel) through torchvision's readers, made long-tailed."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torchvision

from lossbench.data.base import Dataset
from lossbench.data.images import missing_message, normalizer
from lossbench.data.longtail import select_per_class
from lossbench.data.noise import MNIST_MAP
from lossbench.data.spec import DataSpec

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class MNISTLike(Dataset):
    """An IDX-format digit set read by torchvision (`ROOT/<Name>/raw/*-ubyte`), made long-tailed.

    Same recipe as CIFAR (`longtail_spec`): official test set, `val_per_class` balanced validation
    images reserved from the training images, then `longtail_counts(n_max, 10, imbalance_ratio, profile)`
    training images with n_max = the smallest per-class count left. Pixels are normalised with the
    usual per-dataset mean/std.

    When the raw files are missing but `system_dir` holds the original `.gz` files (Fashion-MNIST:
    the Debian package `dataset-fashion-mnist`, `/usr/share/datasets/fashion-mnist/`), they are
    gunzipped into `ROOT/<Name>/raw/` first; else `download=True` uses torchvision's downloader.

    Args:
        root: Folder that holds (or will hold) `<Name>/raw/`.
        download: Download with torchvision when the files are missing (needs internet).
        imbalance_ratio: n_max / n_min of the training split (>= 1).
        profile: ``"exp"`` or ``"step"``.
        val_per_class: Balanced validation images per class taken from the training images.
        data_seed: Seed of the long-tail draw, the validation split and the label noise.
        noise: Label noise `{kind, rate, clean_val}` (see `lossbench.data.noise.LabelNoise`).
        system_dir: Folder with the original `*-ubyte.gz` files to unpack from (empty string: none).
        n_max: Training images of the head class (None: the smallest per-class count left after
            validation); a smaller value subsamples the training split (CPU-scale runs).
        test_per_class: None: the whole official test set; a number: a balanced subset of it
            (drawn with `data_seed`).
    """

    name = "mnist"
    tv_class: type = torchvision.datasets.MNIST
    mean, std = (0.1307,), (0.3081,)
    how = "set dataset.download=true (needs internet) or put the four IDX files there"
    execution_params = ("root", "download", "system_dir")

    def __init__(
        self,
        root: str = "data",
        download: bool = False,
        imbalance_ratio: float = 100.0,
        profile: str = "exp",
        val_per_class: int = 500,
        data_seed: int = 0,
        noise: Mapping[str, Any] | None = None,
        system_dir: str = "",
        n_max: int | None = None,
        test_per_class: int | None = None,
    ) -> None:
        if n_max is not None and n_max < 1:
            raise ValueError(f"n_max must be >= 1 (or null for every image), got {n_max}")
        self.root, self.download, self.system_dir, self.n_max = Path(root), download, system_dir, n_max
        self.set_recipe(imbalance_ratio, profile, val_per_class, data_seed, noise)
        if test_per_class is not None and test_per_class < 1:
            raise ValueError(f"test_per_class must be >= 1 (or null), got {test_per_class}")
        self.test_subset = test_per_class
        if not download and not self._system_files_present():  # missing data fails before training
            self._ensure_files()

    def shapes(self) -> tuple[tuple[int, ...], int]:
        """IDX digit images are (1, 28, 28), 10 classes."""
        return (1, 28, 28), 10

    @property
    def raw_folder(self) -> Path:
        """ROOT/<Name>/raw, where torchvision reads the IDX files."""
        return self.root / self.tv_class.__name__ / "raw"

    def missing_files(self) -> list[str]:
        """The expected IDX files that are not there (empty when the data is present)."""
        return [str(self.raw_folder / f) for f in FILES if not (self.raw_folder / f).is_file()]

    def _system_files_present(self) -> bool:
        source = Path(self.system_dir) if self.system_dir else None
        return source is not None and all((source / f"{f}.gz").is_file() for f in FILES)

    def _unpack_system_files(self) -> None:
        if not self._system_files_present():
            return
        source = Path(self.system_dir)
        self.raw_folder.mkdir(parents=True, exist_ok=True)
        for f in FILES:
            if not (self.raw_folder / f).is_file():
                part = self.raw_folder / f"{f}.part"  # renamed when complete: no half-written file
                with gzip.open(source / f"{f}.gz", "rb") as src, open(part, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                part.replace(self.raw_folder / f)

    def _ensure_files(self) -> None:
        if self.missing_files():
            self._unpack_system_files()
        if self.missing_files() and self.download:
            try:
                self.tv_class(str(self.root), train=True, download=True)
            except Exception as exc:  # offline: one line, with the remedy
                raise ValueError(
                    f"{self.name}: download to {self.root} failed ({type(exc).__name__}: {exc}); {self.how}"
                ) from exc
        missing = self.missing_files()
        if missing:
            raise ValueError(missing_message(self.name, missing, self.how))

    def _read(self, train: bool) -> tuple[np.ndarray, np.ndarray]:
        ds = self.tv_class(str(self.root), train=train, download=False)
        return ds.data.numpy()[:, None], ds.targets.numpy().astype(np.int64)

    def build(self) -> DataSpec:
        """Read the IDX files and cut the splits."""
        self._ensure_files()
        x, y = self._read(train=True)
        test_x, test_y = self._read(train=False)
        if self.test_subset is not None:  # its own stream: the train/val draws stay those of the full set
            keep = select_per_class(
                test_y, [self.test_subset] * 10, np.random.default_rng([self.data_seed, 2])
            )
            test_x, test_y = test_x[keep], test_y[keep]
        return self.cut_longtail(
            self.name,
            x,
            y,
            10,
            test=(test_x, test_y),
            n_max=self.n_max,
            transform=normalizer(self.mean, self.std),
        )


class MNIST(MNISTLike):
    """MNIST-LT (60,000 training / 10,000 test digits before the cut)."""

    asymmetric_map = MNIST_MAP


class FashionMNIST(MNISTLike):
    """Fashion-MNIST-LT (Xiao et al. 2017; 6,000 training / 1,000 test images per class before the cut)."""

    name = "fashion_mnist"
    tv_class = torchvision.datasets.FashionMNIST
    mean, std = (0.2860,), (0.3530,)
    how = (
        "install the Debian package dataset-fashion-mnist (`make data-fashion-mnist`), "
        "set dataset.download=true (needs internet), or put the four IDX files there"
    )
