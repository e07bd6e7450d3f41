"""LeNet-5 style convolutional network for 28x28 (or 32x32) images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lossbench.models.base import Classifier, check_image_shape
from lossbench.models.heads import check_head, make_head


class LeNet(Classifier):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling, as commonly used on (Fashion-)MNIST.

    `conv 5x5 (6, padding 2) -> pool 2 -> conv 5x5 (16) -> pool 2 -> fc 120 -> fc 84 -> head`. The
    flattened size is computed from `input_shape`: 16 x 5 x 5 on 28x28, 16 x 6 x 6 on 32x32.

    Args:
        input_shape: (channels, height, width) of one image.
        num_classes: Number of output logits C.
        head: ``"linear"`` or ``"normed"`` (cosine classifier, used with LDAM).
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, head: str = "linear") -> None:
        super().__init__()
        check_image_shape(input_shape, "LeNet")
        check_head(head)
        self.conv = nn.Sequential(
            nn.Conv2d(input_shape[0], 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        )  # fmt: skip
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, *input_shape)).shape[1]
        self.fc = nn.Sequential(nn.Linear(flat, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU())
        self.head = make_head(head, 84, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Output of the 84-unit layer (N, 84)."""
        return self.fc(self.conv(x))
