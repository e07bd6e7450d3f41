"""Dataset recipes: validated on construction, loaded into a `DataSpec` by `load()`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import ClassVar

import numpy as np
import torch

from lossbench.data.longtail import (
    index_hash,
    longtail_counts,
    reference_select,
    select_per_class,
    validate_longtail,
)
from lossbench.data.noise import LabelNoise, apply_label_noise
from lossbench.data.spec import DataSpec, Split
from lossbench.tasks.base import CLASSIFICATION
from lossbench.tasks.classification import ClassificationTask


class Dataset(ABC):
    """A dataset recipe: parameters checked on construction, data read by `load()`.

    The constructor is cheap and runs before any training, so invalid parameters (and missing data
    files) fail early;
    `load()` reads the data and returns a `DataSpec` (expensive; `run.py` caches it per process).
    Subclasses implement `build()` (clean splits); `load()` then applies the label noise of
    `self.noise` (seeded by `self.data_seed`) to train and validation, so every dataset gets it.
    """

    task_kind: ClassVar[str] = CLASSIFICATION  # the kind of `load().task`, known without loading
    noise: LabelNoise = LabelNoise()
    data_seed: int = 0
    asymmetric_map: Mapping[int, int] | None = None  # the dataset's published asymmetric-noise map
    # Constructor parameters that say where the files are or how to get them, never what they hold
    # (their contents are checked): left out of the run id (`lossbench.identity`).
    execution_params: tuple[str, ...] = ()

    def shapes(self) -> tuple[tuple[int, ...], int] | None:
        """(input_shape, output width) when known without reading the data, else None (then it is loaded).

        Preflight builds the model on these shapes; large datasets answer here so a grid's preflight
        never holds their arrays.
        """
        return None

    @abstractmethod
    def build(self) -> DataSpec:
        """Read the data and apply the split recipe (clean labels)."""

    def load(self) -> DataSpec:
        """`build()`, then label noise (`noise.kind=none` only records that there is none)."""
        return apply_label_noise(self.build(), self.noise, self.data_seed, self.asymmetric_map)

    def set_recipe(
        self,
        imbalance_ratio: float,
        profile: str,
        val_per_class: int,
        data_seed: int,
        noise: LabelNoise | Mapping | None,
        test_per_class: int | None = None,
    ) -> None:
        """Validate and keep the long-tail split recipe and label noise every dataset shares.

        `test_per_class=None` means the dataset has an official test set (nothing is cut for test).
        """
        validate_longtail(imbalance_ratio, profile)
        check_split_sizes(val_per_class, test_per_class)
        self.imbalance_ratio, self.profile = float(imbalance_ratio), profile
        self.val_per_class, self.test_per_class, self.data_seed = val_per_class, test_per_class, data_seed
        self.set_noise(noise)

    def cut_longtail(
        self, name: str, x: np.ndarray, y: np.ndarray, num_classes: int, **options: object
    ) -> DataSpec:
        """`longtail_spec` of `x, y` with this dataset's split recipe (kept by `set_recipe`).

        `options` are the rest of `longtail_spec`'s keywords (`test=`, `n_max=`, `transform=`, ...); a
        recipe without `test_per_class` (an official test set) passes none.
        """
        recipe: dict[str, object] = {"imbalance_ratio": self.imbalance_ratio, "profile": self.profile,
                                     "val_per_class": self.val_per_class, "data_seed": self.data_seed}  # fmt: skip
        if self.test_per_class is not None:
            recipe["test_per_class"] = self.test_per_class
        return longtail_spec(name, x, y, num_classes, **recipe, **options)  # type: ignore[arg-type]

    def set_noise(self, noise: LabelNoise | Mapping | None) -> None:
        """Validate and keep the noise settings (raises `ValueError` for bad ones, e.g. a missing map)."""
        self.noise = LabelNoise.parse(noise)
        if self.noise.kind == "asymmetric" and self.asymmetric_map is None:
            raise ValueError(
                f"{type(self).__name__} has no published asymmetric-noise class map (cifar10, cifar100 "
                "and mnist have one); use noise.kind=symmetric or pairflip"
            )


def check_split_sizes(val_per_class: int, test_per_class: int | None = None) -> None:
    """Raise `ValueError` for negative split sizes."""
    if val_per_class < 0:
        raise ValueError(f"val_per_class must be >= 0, got {val_per_class}")
    if test_per_class is not None and test_per_class < 1:
        raise ValueError(f"test_per_class must be >= 1, got {test_per_class}")


def longtail_spec(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    *,
    imbalance_ratio: float,
    profile: str,
    val_per_class: int,
    data_seed: int,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    test_per_class: int = 0,
    n_max: int | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    reference_selection: bool = False,
) -> DataSpec:
    """Cut balanced test and validation splits, then a long-tailed training split, from arrays.

    Order of operations (so that selection never touches the test set):
    1. test: `test` if given (an official test set), else `test_per_class` examples per class;
    2. validation: `val_per_class` examples per class from what remains (balanced);
    3. train: `longtail_counts(n_max, C, imbalance_ratio, profile)` examples from the rest, class 0 as head.
       `n_max` defaults to the smallest per-class count left, so every class can be filled.

    All choices are drawn from `numpy.random.default_rng(data_seed)`, independent of the training seed.
    `transform` (e.g. uint8 pixels -> normalised float32) is applied to each selected split only, so a
    large raw array is never converted whole. `reference_selection=True` picks the training images
    with `reference_select` (LDAM-DRW's legacy-seeded shuffle; needs `val_per_class=0`).
    """
    validate_longtail(imbalance_ratio, profile)
    rng = np.random.default_rng(data_seed)
    remaining = np.arange(len(y))
    if test is None:
        test_idx = select_per_class(
            y, [test_per_class] * num_classes, rng, f"dataset.test_per_class={test_per_class}"
        )
        remaining = np.setdiff1d(remaining, test_idx)
        test_x, test_y = x[test_idx], y[test_idx]
    else:
        test_x, test_y = test
    val_idx = remaining[
        select_per_class(
            y[remaining], [val_per_class] * num_classes, rng, f"dataset.val_per_class={val_per_class}"
        )
    ]
    remaining = np.setdiff1d(remaining, val_idx)
    available = np.bincount(y[remaining], minlength=num_classes)
    head = int(available.min()) if n_max is None else n_max
    counts = longtail_counts(head, num_classes, imbalance_ratio, profile)
    if reference_selection:
        if val_per_class or test is None:
            raise ValueError("reference selection needs an official test set and val_per_class=0")
        train_idx = remaining[reference_select(y[remaining], counts, data_seed)]
    else:
        train_idx = remaining[select_per_class(y[remaining], counts, rng)]
    meta = {
        "class_counts": counts,
        "index_hash": index_hash(train_idx),
        "data_seed": data_seed,
        "n_max": head,
        "imbalance_ratio": imbalance_ratio,
        "profile": profile,
        "selection": "reference" if reference_selection else "seeded",
        "sizes": {"train": len(train_idx), "val": len(val_idx), "test": len(test_y)},
    }
    prep = transform if transform is not None else (lambda a: a)
    return DataSpec(
        name=name,
        train=_split(prep(x[train_idx]), y[train_idx]),
        val=_split(prep(x[val_idx]), y[val_idx]),
        test=_split(prep(test_x), test_y),
        task=ClassificationTask(tuple(counts)),
        input_shape=tuple(x.shape[1:]),
        meta=meta,
    )


def _split(x: np.ndarray, y: np.ndarray) -> Split:
    return Split(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64))
