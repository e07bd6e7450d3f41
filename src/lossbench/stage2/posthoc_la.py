"""Post-hoc logit adjustment."""

from __future__ import annotations

import time

import torch
from torch import Tensor, nn

from lossbench.data.spec import DataSpec
from lossbench.models.base import Classifier
from lossbench.stage2.base import Stage2, evaluate_final
from lossbench.train.config import TrainerConfig
from lossbench.train.evaluate import Evaluator
from lossbench.train.loop import FitResult


class LogitAdjustedHead(nn.Module):
    """Wraps a head: `head(h) - offset`, with a fixed per-class `offset` (C,)."""

    offset: Tensor

    def __init__(self, head: nn.Module, offset: Tensor) -> None:
        super().__init__()
        self.head = head
        self.register_buffer("offset", offset)

    def forward(self, features: Tensor) -> Tensor:
        """Adjusted logits (N, C)."""
        return self.head(features) - self.offset.to(features.dtype)


class PosthocLogitAdjustment(Stage2):
    """Post-hoc logit adjustment (Menon et al., ICLR 2021): predict `argmax_c z_c - tau log pi_c`.

    `pi` are the training class frequencies (`n_c / N`, classes without examples clamped to 1). The
    head is wrapped so `evaluate` (and every metric, NLL and ECE included) sees the adjusted logits,
    multiplied by `logit_scale` as in stage 1's evaluation.
    Losses that scale the model's outputs before the softmax (LDAM multiplies them by `s`) are
    adjusted on that scale: the offset is `tau log pi / logit_scale`, so the softmax the loss trained
    sees exactly `s z - tau log pi`. Combining it with a loss that already adjusts for the prior
    during training (balanced softmax, logit-adjusted loss) is legal and double-adjusts: a choice.

    Args:
        tau: Adjustment strength (>= 0); 1 in the paper, 0 changes nothing.
        logit_scale: The factor the loss applies to the model's outputs (> 0); the config takes
            `loss.s` when the loss has one, else 1.
    """

    def __init__(self, tau: float = 1.0, logit_scale: float = 1.0) -> None:
        if not tau >= 0:
            raise ValueError(f"tau must be >= 0, got {tau}")
        if not logit_scale > 0:
            raise ValueError(f"logit_scale must be > 0, got {logit_scale}")
        self.tau, self.logit_scale = float(tau), float(logit_scale)

    def offsets(self, class_counts: tuple[int, ...] | list[int]) -> Tensor:
        """`tau * log(pi) / logit_scale` (C,) float32."""
        counts = torch.as_tensor(list(class_counts), dtype=torch.float64).clamp(min=1.0)
        return (self.tau * (counts / counts.sum()).log() / self.logit_scale).float()

    def apply(
        self, model: Classifier, data: DataSpec, trainer: TrainerConfig, seed: int, evaluator: Evaluator
    ) -> FitResult:
        """Wrap the head with the prior offsets."""
        started = time.perf_counter()
        device = next(model.parameters()).device
        model.head = LogitAdjustedHead(model.head, self.offsets(data.class_counts).to(device))
        return evaluate_final(model, evaluator, started, logit_scale=self.logit_scale, tau=self.tau)
