"""Synthetic label noise, applied by every dataset to its train (and validation) labels, never to test."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lossbench.data.spec import DataSpec, Split
from lossbench.tasks.classification import ClassificationTask

KINDS = ("none", "symmetric", "asymmetric", "pairflip")

# Class maps of the asymmetric ("class-dependent") noise of Patrini et al. (2017), as used by
# Ma et al. (2020, "Normalized loss functions"): source class -> the class it is flipped to.
CIFAR10_MAP = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}  # truck->automobile, bird->airplane, deer->horse, cat<->dog
MNIST_MAP = {2: 7, 3: 8, 7: 1, 5: 6, 6: 5}  # 2->7, 3->8, 7->1, 5<->6
# CIFAR-100: the next class within each "super-class", circularly. The reference code
# (`build_for_cifar100`, applied to blocks [5i, 5i + 5)) takes the super-classes to be the 20 blocks of
# 5 consecutive fine labels, not CIFAR-100's coarse labels; we follow the reference code.
CIFAR100_MAP = {c: 5 * (c // 5) + (c % 5 + 1) % 5 for c in range(100)}


@dataclass(frozen=True)
class LabelNoise:
    """What noise to put on the training labels.

    Attributes:
        kind: ``"none"``; ``"symmetric"``: each label flips with probability `rate` to a class drawn
            uniformly from the C - 1 OTHER classes (Patrini et al. 2017's uniform transition matrix, so
            `rate` is the expected fraction of wrong labels; papers that draw from all C classes
            including the true one use an effective rate of `rate * (C - 1) / C`);
            ``"asymmetric"``: each label of a source class of the dataset's published class map flips
            with probability `rate` to its target class (CIFAR-10, CIFAR-100, MNIST maps above);
            ``"pairflip"``: every class c flips with probability `rate` to c + 1 (mod C) (Han et al. 2018),
            usable on any dataset.
        rate: Flip probability in [0, 1) (for symmetric at most (C - 1) / C is meaningful).
        clean_val: Keep the validation labels clean (default: validation gets the same noise as train).
    """

    kind: str = "none"
    rate: float = 0.0
    clean_val: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"noise.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not 0.0 <= self.rate < 1.0:
            raise ValueError(f"noise.rate must be in [0, 1), got {self.rate}")
        if self.kind == "none" and self.rate != 0.0:
            raise ValueError(f"noise.rate={self.rate} needs noise.kind symmetric, asymmetric or pairflip")

    @classmethod
    def parse(cls, value: LabelNoise | Mapping[str, Any] | None) -> LabelNoise:
        """Build from a config mapping (`{kind, rate, clean_val}`); unknown keys raise `ValueError`."""
        if value is None:
            return cls()
        if isinstance(value, LabelNoise):
            return value
        unknown = set(value) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown noise keys {sorted(unknown)}; valid: kind, rate, clean_val")
        return cls(**dict(value))


def transition_matrix(
    kind: str, rate: float, num_classes: int, class_map: Mapping[int, int] | None = None
) -> np.ndarray:
    """Row-stochastic matrix T (C, C): T[i, j] = P(noisy label j | true label i).

    Raises `ValueError` for ``"asymmetric"`` without a class map.
    """
    eye = np.eye(num_classes)
    if kind == "none" or rate == 0.0:
        return eye
    if kind == "symmetric":
        if num_classes < 2:
            raise ValueError("symmetric noise needs at least 2 classes")
        return (1.0 - rate) * eye + rate / (num_classes - 1) * (1.0 - eye)
    if kind == "pairflip":
        return (1.0 - rate) * eye + rate * np.roll(eye, 1, axis=1)
    if kind == "asymmetric":
        if class_map is None:
            raise ValueError(
                "asymmetric noise needs a published class map (cifar10, cifar100, mnist); "
                "use noise.kind=symmetric or pairflip for this dataset"
            )
        t = eye.copy()
        for src, dst in class_map.items():
            t[src, src], t[src, dst] = 1.0 - rate, rate
        return t
    raise ValueError(f"noise.kind must be one of {', '.join(KINDS)}, got {kind!r}")


def noisify(labels: np.ndarray, matrix: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw a noisy label for each true label from its row of `matrix` (one uniform draw per example)."""
    cdf = np.cumsum(matrix, axis=1)
    cdf[:, -1] = 1.0  # guard against rounding below 1
    u = rng.random(len(labels))
    return (u[:, None] >= cdf[labels]).sum(axis=1).astype(np.int64)


def apply_label_noise(
    spec: DataSpec, noise: LabelNoise, seed: int, class_map: Mapping[int, int] | None = None
) -> DataSpec:
    """Return `spec` with noisy train (and, unless `clean_val`, validation) labels; test stays clean.

    The draws come from `numpy.random.default_rng([seed, 1])` (independent of the split draws).
    `class_counts` become the counts of the observed (noisy) training labels, which is all a method can
    see; `meta` records the clean counts and the realised noise rate of each split.
    """
    if noise.kind == "none":
        return dataclasses.replace(spec, meta={**spec.meta, "noise": {"kind": "none", "rate": 0.0}})
    if not isinstance(spec.task, ClassificationTask):
        raise ValueError(
            f"label noise flips class labels; {spec.name} is a {spec.task.kind} dataset (use noise.kind=none)"
        )
    matrix = transition_matrix(noise.kind, noise.rate, spec.num_classes, class_map)
    rng = np.random.default_rng([seed, 1])
    splits = {"train": spec.train, "val": spec.val}
    realised: dict[str, float] = {}
    for name in ("train", "val"):
        if name == "val" and noise.clean_val:
            continue
        split = splits[name]
        clean = split.y.numpy()
        noisy = noisify(clean, matrix, rng)
        realised[name] = float((noisy != clean).mean()) if len(clean) else 0.0
        splits[name] = Split(split.x, torch.as_tensor(noisy, dtype=torch.int64))
    counts = np.bincount(splits["train"].y.numpy(), minlength=spec.num_classes).tolist()
    meta = {
        **spec.meta,
        "clean_class_counts": list(spec.class_counts),
        "class_counts": counts,
        "noise": {"kind": noise.kind, "rate": noise.rate, "clean_val": noise.clean_val, "realised": realised},
    }
    return dataclasses.replace(
        spec, train=splits["train"], val=splits["val"], task=ClassificationTask(tuple(counts)), meta=meta
    )
