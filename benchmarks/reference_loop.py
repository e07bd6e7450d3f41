"""A reference-style CIFAR training loop, the baseline of `make bench`'s ResNet-32 comparison.

Written from the LDAM-DRW paper's description of its CIFAR protocol (Cao et al., NeurIPS 2019,
section 4 and appendix): images are kept as uint8 arrays and decoded into PIL images one at a time;
each training image gets `RandomCrop(32, padding=4)` and `RandomHorizontalFlip()` and is turned into a
normalised tensor by torchvision transforms; a `torch.utils.data.DataLoader` shuffles and collates
batches of 128; ResNet-32 is trained with `torch.optim.SGD` (momentum 0.9, weight decay 2e-4) in the
default NCHW layout with autograd on; evaluation runs under `torch.no_grad()` in batches of 100. This
is the per-sample pipeline lossbench replaces with tensors on the device. The model is lossbench's
ResNet-32 class (`lossbench.models.resnet_cifar.ResNetCifar`: the same layers, initialisation and
arithmetic) with the reference's forward order (`reference_resnet32`): its ReLUs write new tensors
and its shortcut sum runs in place, where lossbench also runs the ReLUs in place.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from lossbench.models.resnet_cifar import BasicBlock, ResNetCifar

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)  # the reference's CIFAR-10 statistics


class ReferenceBlock(BasicBlock):
    """A basic block run in the reference's order: new tensors from the ReLUs, the shortcut added in place."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class ReferenceResNet(ResNetCifar):
    """`ResNetCifar` whose stem ReLU writes a new tensor, as the reference's does."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled output of the last stage (N, 64)."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)


def reference_resnet32(num_classes: int = 10) -> ResNetCifar:
    """ResNet-32 (lossbench's layers and initialisation) running the reference's forward."""
    model = ReferenceResNet([3, 32, 32], num_classes)
    for block in model.modules():
        if type(block) is BasicBlock:
            block.__class__ = ReferenceBlock
    return model


class ImageArray(Dataset):
    """uint8 images (N, 32, 32, 3) and labels, decoded to PIL and transformed per sample."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: transforms.Compose) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def loaders(
    train_images, train_labels, test_images, test_labels, workers: int = 0
) -> tuple[DataLoader, DataLoader]:
    """The reference's train (crop + flip, shuffled, batch 128) and test (batch 100) loaders."""
    norm = [transforms.ToTensor(), transforms.Normalize(MEAN, STD)]
    train_tf = transforms.Compose(
        [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), *norm]
    )
    train = DataLoader(ImageArray(train_images, train_labels, train_tf), batch_size=128, shuffle=True,
                       num_workers=workers)  # fmt: skip
    test = DataLoader(ImageArray(test_images, test_labels, transforms.Compose(norm)), batch_size=100,
                      shuffle=False, num_workers=workers)  # fmt: skip
    return train, test


def train_epoch(model: torch.nn.Module, loader: DataLoader, opt: torch.optim.Optimizer) -> float:
    """One epoch of cross-entropy SGD; returns the mean loss (synchronising every step, as the reference's meters)."""
    model.train()
    total, n = 0.0, 0
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(y)
        n += len(y)
    return total / max(1, n)


@torch.no_grad()
def test_accuracy(model: torch.nn.Module, loader: DataLoader) -> float:
    """Top-1 accuracy over the loader (eval mode, no autograd)."""
    model.eval()
    hits = n = 0
    for x, y in loader:
        hits += int((model(x).argmax(1) == y).sum())
        n += len(y)
    return hits / max(1, n)
