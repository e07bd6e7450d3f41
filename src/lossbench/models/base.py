"""The model contract: a feature extractor and a separate classifier head."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Sequence

from torch import Tensor, nn


def check_image_shape(input_shape: Sequence[int], model: str) -> None:
    """Raise `ValueError` unless `input_shape` is (channels, height, width)."""
    if len(input_shape) != 3:
        raise ValueError(f"{model} needs image inputs (channels, height, width), got {list(input_shape)}")


class Classifier(nn.Module, metaclass=ABCMeta):
    """Maps inputs (N, *input_shape) to logits (N, C) as `head(features(x))`.

    Keeping `features` and `head` apart lets recipes that need the penultimate features
    (influence-balanced loss) or only the classifier (cRT, tau-normalisation) use them without
    a second model definition.
    """

    head: nn.Module

    @abstractmethod
    def features(self, x: Tensor) -> Tensor:
        """Penultimate features (N, D)."""

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, C)."""
        return self.head(self.features(x))
