"""Hard parameter sharing: one shared trunk, one small head per sub-task, outputs concatenated."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from lossbench.models.base import Classifier, check_image_shape
from lossbench.models.heads import check_head, make_head


class MultiHead(nn.Module):
    """Applies one head per sub-task to shared features (N, D) and concatenates: (N, sum(widths))."""

    def __init__(self, heads: Sequence[nn.Module]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward(self, features: Tensor) -> Tensor:
        """Sub-task outputs side by side, in sub-task order."""
        return torch.cat([head(features) for head in self.heads], dim=1)


class MultiTaskModel(Classifier):
    """A `Classifier` whose `head` is a `MultiHead`: `features` is the shared trunk.

    `shared_parameters()` (trunk) and `task_parameters()` (heads) are what task weightings see:
    per-task gradients are taken on the shared ones only.
    """

    head: MultiHead

    def __init__(self, num_classes: int, head_widths: Sequence[int]) -> None:
        super().__init__()
        widths = [int(w) for w in head_widths]
        if not widths or min(widths) < 1 or sum(widths) != num_classes:
            raise ValueError(f"head widths {widths} must be >= 1 and sum to the output width {num_classes}")
        self.head_widths = widths

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the trunk (everything outside the heads)."""
        in_head = {id(p) for p in self.head.parameters()}
        return (p for p in self.parameters() if id(p) not in in_head)

    def task_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the per-task heads."""
        return self.head.parameters()


class MultiLeNet(MultiTaskModel):
    """The MultiLeNet of Sener & Koltun (2018, authors' `multi_task/models/multi_lenet.py`).

    Trunk: `conv 5x5 (10) -> max-pool 2 -> ReLU -> conv 5x5 (20) -> Dropout2d -> max-pool 2 -> ReLU
    -> fc 50 -> ReLU` (320 inputs to the fc on 28x28). Head per task: `fc 50 -> ReLU -> Dropout ->
    fc width`. Deviation: the authors reuse one dropout mask across the tasks' forward passes; here
    the trunk runs once per batch, so every task sees the same mask anyway.

    Args:
        input_shape: (channels, height, width), e.g. (1, 28, 28).
        num_classes: Total output width (sum of `head_widths`).
        head_widths: Output width of each sub-task's head (classes, or 1 for regression).
        dropout: Dropout probability in trunk and heads (0.5 as in the authors' code).
        head: Last layer of each head: ``"linear"`` or ``"normed"`` (cosine; `loss=ldam` selects it).
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, head_widths: Sequence[int],
                 dropout: float = 0.5, head: str = "linear") -> None:  # fmt: skip
        super().__init__(num_classes, head_widths)
        check_image_shape(input_shape, "MultiLeNet")
        check_head(head)
        self.trunk = nn.Sequential(
            nn.Conv2d(input_shape[0], 10, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(10, 20, 5), nn.Dropout2d(dropout), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(),
        )  # fmt: skip
        with torch.no_grad():
            flat = self.trunk(torch.zeros(1, *input_shape)).shape[1]
        self.fc = nn.Sequential(nn.Linear(flat, 50), nn.ReLU())
        self.head = MultiHead(
            [
                nn.Sequential(nn.Linear(50, 50), nn.ReLU(), nn.Dropout(dropout), make_head(head, 50, w))
                for w in self.head_widths
            ]
        )

    def features(self, x: Tensor) -> Tensor:
        """The shared representation (N, 50)."""
        return self.fc(self.trunk(x))


class MultiTaskMLP(MultiTaskModel):
    """An MLP trunk (`Linear -> ReLU` per hidden layer) with one linear head per sub-task, for tables.

    Args:
        input_shape: Shape of one example (flattened).
        num_classes: Total output width (sum of `head_widths`).
        head_widths: Output width of each sub-task's head.
        hidden: Widths of the shared hidden layers.
        head: ``"linear"`` or ``"normed"`` (cosine; `loss=ldam` selects it).
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, head_widths: Sequence[int],
                 hidden: Sequence[int] = (64, 64), head: str = "linear") -> None:  # fmt: skip
        super().__init__(num_classes, head_widths)
        check_head(head)
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden widths must be >= 1, got {list(hidden)}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = MultiHead([make_head(head, width, w) for w in self.head_widths])

    def features(self, x: Tensor) -> Tensor:
        """Output of the last shared layer (N, hidden[-1])."""
        return self.body(x)
