"""Weighting recipes: `Weighting` subclasses named by `configs/weighting/*.yaml`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from lossbench.tasks.base import prepare
from lossbench.tasks.classification import classification_stats
from lossbench.weighting.base import ClassWeighting, Weighting


def build_weighting(name: str, class_counts: Sequence[int], **params: Any) -> Weighting:
    """Recipe `name` (an option of `configs/weighting/`) fitted to `class_counts`."""
    from lossbench.config import instantiate_option

    weighting: Weighting = instantiate_option("weighting", name, **params)
    prepare(*classification_stats(class_counts), weighting)
    return weighting


def class_weights(name: str, class_counts: Sequence[int], **params: Any) -> Tensor:
    """The per-class weights (C,) of recipe `name`, normalised to sum to C (Cui et al., 2019).

    Deferred recipes (`drw`) return the weights they switch to.

    >>> class_weights("inverse_frequency", [30, 10]).tolist()
    [0.5, 1.5]
    """
    weighting = build_weighting(name, class_counts, **params)
    if not isinstance(weighting, ClassWeighting):
        raise ValueError(f"weighting {name!r} does not use fixed class weights")
    return weighting.target_weights.clone()


__all__ = ["Weighting", "build_weighting", "class_weights"]
