"""Multi-label metrics on logits (N, C) and binary targets (N, C), computed in torch.

Conventions: a label is predicted when its logit is > 0 (sigmoid > 0.5). Precision/recall with a
zero denominator count as 0 (scikit-learn's `zero_division=0`). Definitions:

* `map`: mean over classes with at least one positive of the average precision
  `sum_n (R_n - R_{n-1}) P_n` over the distinct score thresholds (scikit-learn's
  `average_precision_score`, ties handled the same way).
* `micro_f1` / `macro_f1`: `f1_score(average="micro" | "macro")`.
* CP, CR, CF1 (per-class precision and recall averaged over the C classes, CF1 their harmonic
  mean) and OP, OR, OF1 (over all labels), as reported by ML-GCN and ASL (Ridnik et al. 2021).
"""

from __future__ import annotations

import torch
from torch import Tensor


def average_precision(scores: Tensor, positives: Tensor) -> float:
    """Average precision of one class from scores (N,) and a boolean mask of positives (N,)."""
    order = torch.argsort(scores, descending=True, stable=True)
    s, t = scores[order], positives[order].double()
    tp, fp = torch.cumsum(t, 0), torch.cumsum(1 - t, 0)
    last = torch.cat([torch.nonzero(s[1:] != s[:-1]).flatten(), torch.tensor([len(s) - 1])])
    tp, fp = tp[last], fp[last]
    precision, recall = tp / (tp + fp), tp / tp[-1]
    previous = torch.cat([torch.zeros(1, dtype=recall.dtype), recall[:-1]])
    return float(((recall - previous) * precision).sum())


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    return torch.where(den > 0, num / den.clamp(min=1e-300), torch.zeros_like(num))


def _f1(p: Tensor, r: Tensor) -> Tensor:
    return _ratio(2 * p * r, p + r)


def multilabel_metrics(logits: Tensor, targets: Tensor) -> dict[str, float]:
    """mAP, micro/macro F1 and CP/CR/CF1/OP/OR/OF1 (floats in [0, 1]) of logits (N, C), targets (N, C)."""
    y = targets.bool()
    pred = logits > 0
    tp = (pred & y).sum(0).double()
    fp = (pred & ~y).sum(0).double()
    fn = (~pred & y).sum(0).double()
    per_p, per_r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    cp, cr = per_p.mean(), per_r.mean()
    op, orr = _ratio(tp.sum(), tp.sum() + fp.sum()), _ratio(tp.sum(), tp.sum() + fn.sum())
    with_pos = y.any(0)
    aps = [average_precision(logits[:, c].double(), y[:, c]) for c in range(y.shape[1]) if with_pos[c]]
    return {
        "map": float(sum(aps) / len(aps)) if aps else float("nan"),
        "micro_f1": float(_ratio(2 * tp.sum(), 2 * tp.sum() + fp.sum() + fn.sum())),
        "macro_f1": float(_ratio(2 * tp, 2 * tp + fp + fn).mean()),
        "cp": float(cp), "cr": float(cr), "cf1": float(_f1(cp, cr)),
        "op": float(op), "or": float(orr), "of1": float(_f1(op, orr)),
    }  # fmt: skip
