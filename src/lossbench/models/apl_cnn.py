"""The small CNNs of Ma et al. (2020, "Normalized Loss Functions for Deep Learning with Noisy Labels")."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lossbench.models.base import Classifier, check_image_shape
from lossbench.models.heads import check_head, make_head

# conv widths per variant: each entry is one block of 3x3 conv + BN + ReLU layers, then a 2x2 max-pool
WIDTHS = {"mnist": ((32,), (64,)), "cifar10": ((64, 64), (128, 128), (196, 196))}


class APLConvNet(Classifier):
    """Conv blocks (3x3 conv + BatchNorm + ReLU, 2x2 max-pool) -> fc + BatchNorm + ReLU -> head.

    ``variant="mnist"``: conv 32 -> pool -> conv 64 -> pool -> fc 128 (28x28 input: 64 x 7 x 7 = 3136
    inputs to the fc layer), the network of Ma et al.'s MNIST experiments. ``variant="cifar10"``: two
    convs per block at 64, 128, 196 channels -> fc 256 (their 8-layer CIFAR-10 network). As in the
    reference (`models.py`, `ToyModel`), convs keep their bias, conv weights are Kaiming-uniform
    (fan-in, ReLU) and linear weights Xavier-uniform; the flattened size is computed from `input_shape`.

    Args:
        input_shape: (channels, height, width) of one image.
        num_classes: Number of output logits C.
        variant: ``"mnist"`` or ``"cifar10"``.
        head: ``"linear"`` or ``"normed"`` (cosine classifier, used with LDAM).
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, variant: str = "mnist", head: str = "linear"
    ) -> None:
        super().__init__()
        check_image_shape(input_shape, "APLConvNet")
        check_head(head)
        if variant not in WIDTHS:
            raise ValueError(f"variant must be one of {', '.join(WIDTHS)}, got {variant!r}")
        layers: list[nn.Module] = []
        channels = input_shape[0]
        for block in WIDTHS[variant]:
            for width in block:
                layers += [
                    nn.Conv2d(channels, width, 3, padding=1),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                channels = width
            layers.append(nn.MaxPool2d(2))
        self.conv = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            flat = self.conv(torch.zeros(2, *input_shape)).shape[1]
        hidden = 128 if variant == "mnist" else 256
        self.fc = nn.Sequential(nn.Linear(flat, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True))
        self.head = make_head(head, hidden, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)

    def features(self, x: Tensor) -> Tensor:
        """Output of the fully connected layer after BatchNorm and ReLU (N, 128 or 256)."""
        return self.fc(self.conv(x))
