"""Shared pieces of the regression losses: predictions (N, 1) -> (N,), the task-kind declaration."""

from __future__ import annotations

from torch import Tensor

from lossbench.tasks.base import REGRESSION

REGRESSION_ONLY = (REGRESSION,)


def residuals(outputs: Tensor, targets: Tensor) -> Tensor:
    """`prediction - target` (N,) from outputs (N, 1) and targets (N,)."""
    return outputs.reshape(-1) - targets.to(outputs.dtype)
