"""torchvision's ResNet-18 adapted to 32x32 images (3x3 stride-1 stem, no max-pool)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torchvision.models import resnet18

from lossbench.models.base import Classifier, check_image_shape
from lossbench.models.heads import check_head, make_head


class ResNet18(Classifier):
    """ResNet-18 (He et al. 2016) from torchvision with the usual CIFAR stem.

    The 7x7 stride-2 stem conv becomes 3x3 stride 1 and the max-pool is removed, so a 32x32 image keeps
    its resolution in the first stage (as in most CIFAR re-implementations); the 1000-way `fc` is
    replaced by our head on the 512 pooled features. Weights are torchvision's default initialisation.

    Args:
        input_shape: (channels, height, width) of one image.
        num_classes: Number of output logits C.
        head: ``"linear"`` or ``"normed"`` (cosine classifier, used with LDAM).
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, head: str = "linear") -> None:
        super().__init__()
        check_image_shape(input_shape, "ResNet18")
        check_head(head)
        net = resnet18(weights=None)
        net.conv1 = nn.Conv2d(input_shape[0], 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Identity()
        self.body = net
        self.head = make_head(head, 512, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Globally average-pooled output of the last stage (N, 512)."""
        return self.body(x)
