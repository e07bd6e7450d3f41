"""Shared pieces of the image datasets: parameter checks and per-channel normalisation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def normalizer(mean: Sequence[float], std: Sequence[float]):
    """uint8 images (N, C, H, W) -> float32 `(x / 255 - mean) / std` per channel."""
    m = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)

    def apply(x: np.ndarray) -> np.ndarray:
        return ((x.astype(np.float32) / 255.0 - m) / s).astype(np.float32)

    return apply


def missing_message(name: str, missing: Sequence[str], how: str) -> str:
    """One line: which file is missing and how to get the data."""
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    return f"{name} files not found: expected {missing[0]}{more}; {how}"
