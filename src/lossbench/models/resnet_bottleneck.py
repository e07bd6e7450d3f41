"""The CIFAR ResNet-32 of the logit-adjustment reference (Menon et al. 2021): bottleneck blocks."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from lossbench.models.base import Classifier, check_image_shape
from lossbench.models.heads import check_head, make_head


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 conv-BN, all `planes` wide (no expansion), added to a shortcut.

    The first block of a stage has a projection shortcut (1x1 conv with the block's stride + BN);
    the others are identity blocks.
    """

    def __init__(self, in_planes: int, planes: int, stride: int, project: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_planes, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 1, bias=False), nn.BatchNorm2d(planes),
        )  # fmt: skip
        self.shortcut = (
            nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
            if project
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        """relu(body(x) + shortcut(x)), the sum and ReLU in place on the body's new output."""
        out = self.body(x)
        out = out.add_(self.shortcut(x))  # a method, not +=: torch.fx traces `+=` as an out-of-place add
        return F.relu(out, inplace=True)


class BottleneckResNetCifar(Classifier):
    """`cifar_resnet32` of google-research/logit_adjustment (`models.py`), in PyTorch.

    What differs from LDAM-DRW's ResNet-32 (`resnet32`, `ResNetCifar`): bottleneck blocks (1x1, 3x3,
    1x1; 16/32/64 channels, no expansion) instead of two 3x3 convs; a projection shortcut (1x1 conv +
    BN) on every stage's first block, including the stride-1 first stage, instead of option A
    (zero-padding); the stem zero-pads 3 pixels and applies an unpadded 3x3 conv (36x36 maps, not
    32x32); a final BatchNorm before global average pooling; He-normal conv weights and N(0, 0.01)
    classifier weights. The reference's Keras L2 penalty of 1e-4 on every kernel and on the classifier
    bias equals SGD weight decay 2e-4 (the gradient of 1e-4 * ||w||^2); set it in the trainer (ours
    also decays BN parameters, theirs does not). BN momentum 0.9 in Keras = 0.1 in PyTorch (the default).

    Args:
        input_shape: (channels, height, width) of one image.
        num_classes: Number of output logits C.
        blocks_per_stage: Blocks per stage (5 in the reference's ResNet-32).
        head: ``"linear"`` or ``"normed"`` (cosine classifier, used with LDAM).
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, blocks_per_stage: int = 5, head: str = "linear"
    ) -> None:
        super().__init__()
        check_image_shape(input_shape, "BottleneckResNetCifar")
        if blocks_per_stage < 1:
            raise ValueError(f"blocks_per_stage must be >= 1, got {blocks_per_stage}")
        check_head(head)
        self.stem = nn.Sequential(
            nn.ZeroPad2d(3),
            nn.Conv2d(input_shape[0], 16, 3, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
        )
        blocks, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(blocks_per_stage):
                blocks.append(Bottleneck(in_planes, planes, stride if i == 0 else 1, project=i == 0))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks, nn.BatchNorm2d(64))
        self.head = make_head(head, 64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)  # Keras he_normal (theirs is truncated; ours is not)
        if isinstance(self.head, nn.Linear):
            nn.init.normal_(self.head.weight, std=0.01)
            nn.init.zeros_(self.head.bias)

    def features(self, x: Tensor) -> Tensor:
        """Globally average-pooled output of the final BatchNorm (N, 64)."""
        return F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1)
