"""Regression metrics on predictions (N,) and targets (N,), with label bins for the balanced and shot views."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

# |error| is clamped to this before the log of the geometric mean, so an exact prediction stays finite
GM_FLOOR = 1e-12


def geometric_mean_error(errors: Tensor) -> float:
    """Geometric mean of absolute errors, `exp(mean(log|e|))` (Yang et al., 2021's GM)."""
    return float(errors.abs().clamp(min=GM_FLOOR).log().mean().exp())


def pearson_r(preds: Tensor, targets: Tensor) -> float | None:
    """Pearson correlation of predictions and targets (None when either is constant)."""
    p, t = preds - preds.mean(), targets - targets.mean()
    denom = float(p.norm() * t.norm())
    return float((p * t).sum()) / denom if denom > 0 else None


def regression_metrics(
    preds: Tensor, targets: Tensor, bins: Tensor, bin_train_counts: list[int], many: int, few: int
) -> dict[str, Any]:
    """All per-split metrics of a regression model.

    Args:
        preds: Predictions (N,).
        targets: Targets (N,).
        bins: Label bin (N,) int64 of each target.
        bin_train_counts: Training examples per bin (length B).
        many: A bin with more training examples than this is many-shot.
        few: A bin with fewer training examples than this is few-shot (else medium).

    Returns:
        Scalars `mse, mae, gm` (geometric mean of |error|), `balanced_mse, balanced_mae` (the mean over
        the bins present in `targets` of each bin's mean error), `pearson`, and `{many,medium,few}_{mae,
        mse,gm}` over the examples whose bin is in that shot group (None if there is none, as in Yang
        et al.'s shot metrics), plus the lists `bin_mae` and `bin_count` (per bin; None/0 where absent)
        for the error-vs-density plot. Every value but `pearson` is lower-is-better.
    """
    preds, targets = preds.double().cpu().reshape(-1), targets.double().cpu().reshape(-1)
    err = preds - targets
    sq, ab = err.square(), err.abs()
    n_bins = len(bin_train_counts)
    count = torch.bincount(bins, minlength=n_bins).double()
    present = count > 0
    bin_mse = torch.bincount(bins, weights=sq, minlength=n_bins) / count.clamp(min=1)
    bin_mae = torch.bincount(bins, weights=ab, minlength=n_bins) / count.clamp(min=1)
    out: dict[str, Any] = {
        "mse": float(sq.mean()),
        "mae": float(ab.mean()),
        "gm": geometric_mean_error(err),
        "balanced_mse": float(bin_mse[present].mean()),
        "balanced_mae": float(bin_mae[present].mean()),
        "pearson": pearson_r(preds, targets),
    }
    train = torch.as_tensor(bin_train_counts)
    shot = {"many": train > many, "few": train < few}
    shot["medium"] = ~shot["many"] & ~shot["few"]
    for name in ("many", "medium", "few"):
        sel = shot[name][bins]
        for metric, value in (("mae", ab), ("mse", sq)):
            out[f"{name}_{metric}"] = float(value[sel].mean()) if sel.any() else None
        out[f"{name}_gm"] = geometric_mean_error(err[sel]) if sel.any() else None
    out["bin_mae"] = [
        float(v) if ok else None for v, ok in zip(bin_mae.tolist(), present.tolist(), strict=True)
    ]
    out["bin_count"] = [int(c) for c in count.tolist()]
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}
