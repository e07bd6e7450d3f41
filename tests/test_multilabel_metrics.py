"""Multi-label metrics agree with scikit-learn, and the ASL/ML-GCN summaries with their definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

from lossbench.metrics.multilabel import average_precision, multilabel_metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multilabel_metrics_match_sklearn(seed):
    g = torch.Generator().manual_seed(seed)
    targets = (torch.rand(60, 5, generator=g) < 0.3).long()
    targets[0] = 1  # every class has a positive
    logits = torch.randn(60, 5, generator=g) + 1.5 * targets
    logits[:10, 2] = 0.25  # ties in the scores
    got = multilabel_metrics(logits, targets)
    y, s, p = targets.numpy(), logits.numpy(), (logits > 0).long().numpy()
    assert got["map"] == pytest.approx(average_precision_score(y, s, average="macro"), abs=1e-12)
    assert got["micro_f1"] == pytest.approx(f1_score(y, p, average="micro", zero_division=0))
    assert got["macro_f1"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
    cp = precision_score(y, p, average="macro", zero_division=0)
    cr = recall_score(y, p, average="macro", zero_division=0)
    assert (got["cp"], got["cr"]) == pytest.approx((cp, cr))
    assert got["cf1"] == pytest.approx(2 * cp * cr / (cp + cr))
    op = precision_score(y, p, average="micro", zero_division=0)
    orr = recall_score(y, p, average="micro", zero_division=0)
    assert (got["op"], got["or"]) == pytest.approx((op, orr))
    assert got["of1"] == pytest.approx(got["micro_f1"])  # OF1 is micro F1


def test_average_precision_by_hand():
    # scores 0.9 (pos), 0.8 (neg), 0.7 (pos): P@1 = 1, P@3 = 2/3 -> AP = 0.5 * 1 + 0.5 * 2/3
    ap = average_precision(torch.tensor([0.9, 0.8, 0.7]), torch.tensor([True, False, True]))
    assert ap == pytest.approx(0.5 + 1 / 3)
    assert ap == pytest.approx(average_precision_score(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.7])))
