"""A multi-layer perceptron for flat or small inputs."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from lossbench.models.base import Classifier
from lossbench.models.heads import check_head, make_head


class MLP(Classifier):
    """Flattens the input, then `Linear -> ReLU (-> Dropout)` per hidden layer, then a linear head.

    Args:
        input_shape: Shape of one example (flattened internally).
        num_classes: Number of output logits C.
        hidden: Widths of the hidden layers.
        dropout: Dropout probability after each hidden layer (0 disables it).
        head: ``"linear"`` or ``"normed"`` (cosine classifier, used with LDAM).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden: Sequence[int] = (128, 128),
        dropout: float = 0.0,
        head: str = "linear",
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden widths must be >= 1, got {list(hidden)}")
        check_head(head)
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        self.body = nn.Sequential(*layers)
        self.head = make_head(head, width, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Output of the last hidden layer (N, hidden[-1])."""
        return self.body(x)
