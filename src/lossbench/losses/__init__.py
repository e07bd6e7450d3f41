"""Losses: `Loss` subclasses named by `configs/loss/*.yaml`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lossbench.losses.base import Loss
from lossbench.tasks.base import prepare
from lossbench.tasks.classification import classification_stats


def build_loss(name: str, class_counts: Sequence[int], **params: Any) -> Loss:
    """Loss `name` (an option of `configs/loss/`) fitted to `class_counts`, `params` overriding its YAML.

    >>> import torch
    >>> loss = build_loss("focal", class_counts=[10, 5], gamma=0.0)
    >>> loss(torch.zeros(2, 2), torch.tensor([0, 1])).shape
    torch.Size([2])
    """
    from lossbench.config import instantiate_option

    loss: Loss = instantiate_option("loss", name, **params)
    prepare(*classification_stats(class_counts), loss)
    return loss


__all__ = ["Loss", "build_loss"]
