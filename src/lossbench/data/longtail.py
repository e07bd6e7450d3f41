"""Long-tailed subsampling with the exact semantics of the LDAM-DRW reference code."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

PROFILES = ("exp", "step")


def validate_longtail(imbalance_ratio: float, profile: str) -> None:
    """Raise `ValueError` for an imbalance ratio below 1 or an unknown profile."""
    if not imbalance_ratio >= 1:
        raise ValueError(f"imbalance_ratio must be >= 1 (1 = balanced), got {imbalance_ratio}")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")


def longtail_counts(n_max: int, num_classes: int, imbalance_ratio: float, profile: str = "exp") -> list[int]:
    """Per-class image counts of a long-tailed split, as in Cao et al. (2019), `get_img_num_per_cls`.

    Args:
        n_max: Count of the head class (class 0).
        num_classes: Number of classes C.
        imbalance_ratio: n_max / n_min (>= 1).
        profile: ``"exp"``: ``int(n_max * (1/ratio) ** (i / (C - 1.0)))``, truncated, not rounded;
            ``"step"``: the first ``C // 2`` classes get ``n_max``, the rest ``int(n_max / ratio)``.

    Returns:
        A list of C counts, non-increasing.

    >>> sum(longtail_counts(5000, 10, 100, "exp"))
    12406
    >>> longtail_counts(100, 4, 10, "step")
    [100, 100, 10, 10]
    """
    validate_longtail(imbalance_ratio, profile)
    if num_classes < 1 or n_max < 1:
        raise ValueError(f"need n_max >= 1 and num_classes >= 1, got {n_max}, {num_classes}")
    if profile == "exp":
        if num_classes == 1:
            return [n_max]
        counts = [
            int(n_max * (1.0 / imbalance_ratio) ** (i / (num_classes - 1.0))) for i in range(num_classes)
        ]
        _check_every_class_kept(counts, n_max, imbalance_ratio)
        return counts
    head = num_classes // 2
    counts = [n_max] * head + [int(n_max / imbalance_ratio)] * (num_classes - head)
    _check_every_class_kept(counts, n_max, imbalance_ratio)
    return counts


def _check_every_class_kept(counts: Sequence[int], n_max: int, imbalance_ratio: float) -> None:
    """A class with no training example makes per-class and balanced metrics meaningless: refuse it."""
    empty = sum(1 for n in counts if n < 1)
    if empty:
        raise ValueError(
            f"imbalance_ratio={imbalance_ratio:g} leaves {empty} of {len(counts)} classes without a training "
            f"example (the head class has {n_max}); use dataset.imbalance_ratio <= {n_max}"
        )


def select_per_class(
    y: np.ndarray, counts: Sequence[int], rng: np.random.Generator, what: str = ""
) -> np.ndarray:
    """Pick `counts[c]` indices of class c from labels `y`, uniformly at random without replacement.

    Returns the chosen indices sorted ascending, so the selection depends on the seed only.
    `what` names the setting behind `counts` in the error (e.g. ``"dataset.val_per_class=500"``).
    """
    chosen = []
    for c, n in enumerate(counts):
        idx = np.flatnonzero(y == c)
        if n > len(idx):
            if what:
                raise ValueError(
                    f"{what} needs {n} examples of class {c} but only {len(idx)} are left; lower it"
                )
            raise ValueError(f"class {c} needs {n} examples but only {len(idx)} are available")
        chosen.append(rng.choice(idx, size=n, replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)


def reference_select(y: np.ndarray, counts: Sequence[int], seed: int) -> np.ndarray:
    """The LDAM-DRW reference's pick (`IMBALANCECIFAR10.gen_imbalanced_data`), reproduced exactly.

    The reference calls `np.random.seed(seed)`, then for each class in label order shuffles that class's
    indices with the legacy global generator and keeps the first `counts[c]`. `np.random.RandomState`
    is the same legacy stream, so on the original CIFAR files this selects the paper's very images.
    Returns the chosen indices sorted ascending.
    """
    rs = np.random.RandomState(seed)
    chosen = []
    for c, n in enumerate(counts):
        idx = np.flatnonzero(y == c)
        if n > len(idx):
            raise ValueError(f"class {c} needs {n} examples but only {len(idx)} are available")
        rs.shuffle(idx)
        chosen.append(idx[:n])
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)


def index_hash(indices: np.ndarray) -> str:
    """Short SHA-256 of a set of selected indices (recorded so two runs can prove they saw the same data)."""
    return hashlib.sha256(np.ascontiguousarray(np.sort(indices), dtype=np.int64).tobytes()).hexdigest()[:16]
