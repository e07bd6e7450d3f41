"""Evaluation: logits for a split, then every metric."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lossbench.data.spec import Split
from lossbench.metrics.functional import classification_metrics


@torch.inference_mode()
def predict(model: nn.Module, x: Tensor, batch_size: int, device: torch.device) -> Tensor:
    """Logits (N, C) on the CPU, computed in eval mode in chunks of `batch_size`."""
    was_training = model.training
    model.eval()
    out = [
        model(x[i : i + batch_size].to(device, non_blocking=True)).float().cpu()
        for i in range(0, len(x), batch_size)
    ]
    model.train(was_training)
    return torch.cat(out)


def evaluate(
    model: nn.Module,
    split: Split,
    class_counts: Sequence[int],
    *,
    batch_size: int,
    device: torch.device,
    many_threshold: int = 100,
    few_threshold: int = 20,
    ece_bins: int = 15,
    logit_scale: float = 1.0,
) -> dict[str, Any]:
    """All metrics of `model` on `split` (see `classification_metrics`).

    `logit_scale` multiplies the logits first (the training loss's `Loss.logit_scale`, e.g. LDAM's `s`).
    """
    logits = predict(model, split.x, batch_size, device) * logit_scale
    return classification_metrics(logits, split.y, class_counts, many_threshold, few_threshold, ece_bins)
