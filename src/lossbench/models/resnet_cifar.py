"""ResNet-32 for 32x32 images exactly as in the LDAM-DRW reference (`models/resnet_cifar.py`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from lossbench.models.base import Classifier, check_image_shape
from lossbench.models.heads import check_head, make_head


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity shortcut (He et al. 2016, CIFAR variant).

    Where the shape changes, the shortcut is "option A" (parameter-free): subsample by 2 in space and
    zero-pad `planes // 4` channels on each side.

    The ReLUs and the shortcut sum run in place on outputs the block has just computed (BatchNorm's
    backward needs its input, not its output, and a sum's backward needs neither), which is the
    reference's arithmetic without a freshly allocated activation per op: on the project's CPU,
    1.04-1.09x the training and 1.05-1.10x the test images/s of ResNet-32 (paired runs), with
    bitwise-identical weights. The sum is `add_`, not `+=`, so that `torch.fx` (BatchNorm folding
    for evaluation) traces it in place too.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes // 4 if (stride != 1 or in_planes != planes) else 0
        self.stride = stride

    def shortcut(self, x: Tensor) -> Tensor:
        """Identity, or option A: `x[:, :, ::2, ::2]` zero-padded with `planes // 4` channels per side."""
        if self.pad == 0 and self.stride == 1:
            return x
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, self.pad, self.pad))

    def forward(self, x: Tensor) -> Tensor:
        """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        out = out.add_(self.shortcut(x))  # a method, not +=: torch.fx traces `+=` as an out-of-place add
        return F.relu(out, inplace=True)


class ResNetCifar(Classifier):
    """`ResNet_s` of the LDAM-DRW reference: 3x3 conv (16) -> 3 stages of basic blocks -> global avg pool.

    Stages have 16, 32, 64 channels (strides 1, 2, 2). Conv and linear weights use `kaiming_normal_`
    (the reference's `_weights_init`); a `normed` head keeps its own initialisation, as the reference's
    `NormedLinear` is not an `nn.Linear`. ResNet-32 (`blocks_per_stage=5`) has 0.46 M parameters.

    Args:
        input_shape: (channels, height, width) of one image.
        num_classes: Number of output logits C.
        blocks_per_stage: Basic blocks per stage n (depth 6n + 2: 5 -> ResNet-32, 3 -> ResNet-20).
        head: ``"linear"`` or ``"normed"`` (the reference's `use_norm=True`, used with LDAM).
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, blocks_per_stage: int = 5, head: str = "linear"
    ) -> None:
        super().__init__()
        check_image_shape(input_shape, "ResNetCifar")
        if blocks_per_stage < 1:
            raise ValueError(f"blocks_per_stage must be >= 1, got {blocks_per_stage}")
        check_head(head)
        self.conv1 = nn.Conv2d(input_shape[0], 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(blocks_per_stage):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.head = make_head(head, 64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def features(self, x: Tensor) -> Tensor:
        """Globally average-pooled output of the last stage (N, 64)."""
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)  # in place: see `BasicBlock`
        out = self.layer3(self.layer2(self.layer1(out)))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)
