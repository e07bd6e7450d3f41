"""Classification metrics on logits, computed in torch (no per-batch state needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def per_class_accuracy(preds: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """Recall of each class (C,), NaN for classes absent from `targets`."""
    total = torch.bincount(targets, minlength=num_classes).double()
    hits = torch.bincount(targets[preds == targets], minlength=num_classes).double()
    return torch.where(total > 0, hits / total.clamp(min=1), torch.full_like(total, math.nan))


def macro_f1(preds: Tensor, targets: Tensor, num_classes: int) -> float:
    """Unweighted mean F1 over the labels present in targets or predictions (scikit-learn's default)."""
    tp = torch.bincount(targets[preds == targets], minlength=num_classes).double()
    support = torch.bincount(targets, minlength=num_classes).double()
    predicted = torch.bincount(preds, minlength=num_classes).double()
    denom = support + predicted
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp))
    return float(f1[denom > 0].mean())


def expected_calibration_error(probs: Tensor, targets: Tensor, bins: int = 15) -> float:
    """ECE with `bins` equal-width confidence bins: sum_b |B_b|/N * |acc(B_b) - conf(B_b)|."""
    conf, preds = probs.max(dim=1)
    correct = (preds == targets).double()
    # bin b holds confidences in (b/bins, (b+1)/bins]; the first bin also takes 0
    idx = (conf.double() * bins).ceil().long().clamp(1, bins) - 1
    count = torch.bincount(idx, minlength=bins).double()
    gap = torch.bincount(idx, weights=correct - conf.double(), minlength=bins).abs()
    return float(gap.sum() / count.sum())


def reliability_bins(probs: Tensor, targets: Tensor, bins: int = 15) -> dict[str, list[Any]]:
    """Per-bin `count`, `acc` and `conf` (None for an empty bin) of a reliability diagram.

    Same equal-width bins as `expected_calibration_error`, so
    `ece == sum(count_b / N * |acc_b - conf_b|)` (Guo et al., 2017, "On Calibration of Modern Neural Networks").
    """
    conf, preds = probs.max(dim=1)
    idx = (conf.double() * bins).ceil().long().clamp(1, bins) - 1
    count = torch.bincount(idx, minlength=bins).double()
    hits = torch.bincount(idx, weights=(preds == targets).double(), minlength=bins)
    conf_sum = torch.bincount(idx, weights=conf.double(), minlength=bins)
    nonempty = count > 0
    return {
        "count": [int(c) for c in count.tolist()],
        "acc": [float(h / c) if ok else None for h, c, ok in zip(hits, count, nonempty, strict=True)],
        "conf": [float(s / c) if ok else None for s, c, ok in zip(conf_sum, count, nonempty, strict=True)],
    }


def shot_groups(
    class_counts: Sequence[int], many_threshold: int = 100, few_threshold: int = 20
) -> dict[str, Tensor]:
    """Masks of many- (> many_threshold), medium- and few-shot (< few_threshold) classes by train count."""
    counts = torch.as_tensor(list(class_counts))
    many, few = counts > many_threshold, counts < few_threshold
    return {"many": many, "medium": ~many & ~few, "few": few}


def classification_metrics(
    logits: Tensor,
    targets: Tensor,
    class_counts: Sequence[int],
    many_threshold: int = 100,
    few_threshold: int = 20,
    ece_bins: int = 15,
) -> dict[str, Any]:
    """All per-split metrics from logits (N, C) and targets (N,).

    Returns scalars `acc, balanced_acc, macro_f1, worst_class_acc, nll, ece, many_acc, medium_acc,
    few_acc` (a shot group with no class, or no test example, gives None), the list `class_acc`
    (None for a class absent from `targets`) and `reliability` (per-bin count/acc/conf, `reliability_bins`). Balanced and worst-class accuracy use the classes present.
    """
    logits, targets = logits.double().cpu(), targets.cpu()
    num_classes = logits.shape[1]
    preds = logits.argmax(dim=1)
    class_acc = per_class_accuracy(preds, targets, num_classes)
    present = ~class_acc.isnan()
    out: dict[str, Any] = {
        "acc": float((preds == targets).double().mean()),
        "balanced_acc": float(class_acc[present].mean()),
        "macro_f1": macro_f1(preds, targets, num_classes),
        "worst_class_acc": float(class_acc[present].min()),
        "nll": float(F.cross_entropy(logits, targets)),
        "ece": expected_calibration_error(logits.softmax(dim=1), targets, ece_bins),
    }
    for name, mask in shot_groups(class_counts, many_threshold, few_threshold).items():
        sel = mask & present
        out[f"{name}_acc"] = float(class_acc[sel].mean()) if sel.any() else None
    out["class_acc"] = [None if math.isnan(a) else float(a) for a in class_acc.tolist()]
    out["reliability"] = reliability_bins(logits.softmax(dim=1), targets, ece_bins)
    return out


def classification_metrics_stacked(
    logits: Tensor,
    targets: Tensor,
    class_counts: Sequence[int],
    many_threshold: int = 100,
    few_threshold: int = 20,
    ece_bins: int = 15,
) -> list[dict[str, Any]]:
    """`classification_metrics` of K models at once: logits (K, N, C), shared targets (N,); one dict per model.

    The stacked trainer scores every member each epoch; one batched pass replaces K calls of ~30 small
    ops each. Counts (per class, per confidence bin) are `bincount`s over member-offset indices, so
    each member's sums add the same numbers in the same order as `classification_metrics`; means may
    round differently in the last bits (`tests/test_metrics.py` checks agreement to 1e-12).
    """
    logits, targets = logits.double().cpu(), targets.cpu()
    k, n, num_classes = logits.shape
    preds = logits.argmax(dim=2)  # (K, N)
    correct = preds == targets
    offset = torch.arange(k).unsqueeze(1)

    def per_member(index: Tensor, width: int, weights: Tensor | None = None) -> Tensor:
        flat = (index + offset * width).reshape(-1)
        w = None if weights is None else weights.reshape(-1)
        return torch.bincount(flat, weights=w, minlength=k * width).double().view(k, width)

    total = torch.bincount(targets, minlength=num_classes).double()  # (C,)
    present = total > 0  # a class absent from targets has no accuracy (NaN), for every member
    hits = per_member(targets.expand(k, n), num_classes, correct.double())
    class_acc = torch.where(present, hits / total.clamp(min=1), torch.full_like(hits, math.nan))
    denom = total + per_member(preds, num_classes)  # support + predicted
    f1 = torch.where(denom > 0, 2 * hits / denom.clamp(min=1), torch.zeros_like(hits))
    f1_mask = denom > 0
    nll = F.cross_entropy(logits.reshape(k * n, num_classes), targets.repeat(k), reduction="none").view(k, n)
    probs = logits.softmax(dim=2)
    conf, top = probs.max(dim=2)
    conf = conf.double()
    top_correct = (top == targets).double()
    idx = (conf * ece_bins).ceil().long().clamp(1, ece_bins) - 1
    count = per_member(idx, ece_bins)
    gap = per_member(idx, ece_bins, top_correct - conf).abs()
    bin_hits = per_member(idx, ece_bins, top_correct)
    bin_conf = per_member(idx, ece_bins, conf)
    groups = {
        name: mask & present
        for name, mask in shot_groups(class_counts, many_threshold, few_threshold).items()
    }
    columns = {
        "acc": correct.double().mean(dim=1),
        "balanced_acc": class_acc[:, present].mean(dim=1),
        "macro_f1": (f1 * f1_mask).sum(dim=1) / f1_mask.sum(dim=1),
        "worst_class_acc": class_acc[:, present].min(dim=1).values,
        "nll": nll.mean(dim=1),
        "ece": gap.sum(dim=1) / count.sum(dim=1),
        **{f"{name}_acc": class_acc[:, sel].mean(dim=1) for name, sel in groups.items() if sel.any()},
    }
    values = {name: col.tolist() for name, col in columns.items()}
    accs, counts, hit_rows, conf_rows = (
        class_acc.tolist(),
        count.tolist(),
        bin_hits.tolist(),
        bin_conf.tolist(),
    )
    out = []
    for j in range(k):
        row: dict[str, Any] = {name: values[name][j] for name in ("acc", "balanced_acc", "macro_f1",
                                                                  "worst_class_acc", "nll", "ece")}  # fmt: skip
        for name in groups:
            row[f"{name}_acc"] = values[f"{name}_acc"][j] if f"{name}_acc" in values else None
        row["class_acc"] = [None if math.isnan(a) else a for a in accs[j]]
        row["reliability"] = {
            "count": [int(c) for c in counts[j]],
            "acc": [h / c if c > 0 else None for h, c in zip(hit_rows[j], counts[j], strict=True)],
            "conf": [s / c if c > 0 else None for s, c in zip(conf_rows[j], counts[j], strict=True)],
        }
        out.append(row)
    return out
