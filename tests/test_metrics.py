import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, log_loss, recall_score

from lossbench.metrics.functional import classification_metrics, expected_calibration_error, shot_groups


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_agree_with_sklearn(seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(200, 5, generator=g) * 2
    y = torch.randint(0, 5, (200,), generator=g)
    m = classification_metrics(logits, y, class_counts=[150, 60, 30, 10, 5])
    preds = logits.argmax(1).numpy()
    assert m["acc"] == pytest.approx(accuracy_score(y, preds))
    assert m["balanced_acc"] == pytest.approx(balanced_accuracy_score(y, preds))
    assert m["macro_f1"] == pytest.approx(f1_score(y, preds, average="macro"))
    recalls = recall_score(y, preds, average=None)
    assert m["class_acc"] == pytest.approx(list(recalls))
    assert m["worst_class_acc"] == pytest.approx(recalls.min())
    assert m["nll"] == pytest.approx(
        log_loss(y, logits.double().softmax(1).numpy(), labels=range(5)), rel=1e-6
    )
    assert m["many_acc"] == pytest.approx(recalls[0])
    assert m["medium_acc"] == pytest.approx(recalls[1:3].mean())
    assert m["few_acc"] == pytest.approx(recalls[3:].mean())


def test_macro_f1_with_missing_predicted_class_matches_sklearn():
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    logits = torch.nn.functional.one_hot(torch.tensor([0, 0, 0, 1, 1, 1]), 3).float()
    m = classification_metrics(logits, y, [2, 2, 2])
    assert m["macro_f1"] == pytest.approx(f1_score(y, logits.argmax(1), average="macro", zero_division=0))


def test_ece_hand_worked():
    # two examples at confidence 0.8 (one right, one wrong) and one at 0.6 (right):
    # bin (0.733, 0.8]: acc 0.5, conf 0.8 -> 2/3 * 0.3; bin (0.533, 0.6]: acc 1, conf 0.6 -> 1/3 * 0.4
    probs = torch.tensor([[0.8, 0.2], [0.8, 0.2], [0.6, 0.4]])
    y = torch.tensor([0, 1, 0])
    assert expected_calibration_error(probs, y, bins=15) == pytest.approx(2 / 3 * 0.3 + 1 / 3 * 0.4)


def test_ece_of_perfect_calibration_is_zero():
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, torch.tensor([0, 1])) == pytest.approx(0.0)


def test_shot_groups_thresholds():
    groups = shot_groups([101, 100, 20, 19], many_threshold=100, few_threshold=20)
    assert groups["many"].tolist() == [True, False, False, False]
    assert groups["medium"].tolist() == [False, True, True, False]
    assert groups["few"].tolist() == [False, False, False, True]


def test_empty_shot_group_is_none():
    m = classification_metrics(torch.randn(20, 2), torch.arange(20) % 2, [50, 50])
    assert m["many_acc"] is None and m["few_acc"] is None and m["medium_acc"] is not None
    assert not np.isnan(m["acc"])


def test_reliability_bins_reproduce_ece():
    from lossbench.metrics.functional import reliability_bins

    gen = torch.Generator().manual_seed(0)
    probs = torch.randn(200, 4, generator=gen).mul(2).softmax(dim=1)
    targets = torch.randint(0, 4, (200,), generator=gen)
    rel = reliability_bins(probs, targets, bins=10)
    assert sum(rel["count"]) == 200 and len(rel["acc"]) == 10
    ece = sum(
        c / 200 * abs(a - f) for c, a, f in zip(rel["count"], rel["acc"], rel["conf"], strict=True) if c
    )
    assert ece == pytest.approx(expected_calibration_error(probs, targets, bins=10))
    assert rel["count"][:2] == [0, 0] and rel["acc"][0] is None  # top-1 confidence >= 1/C = 0.25


def _agree(a, b):
    """Equal structure, None in the same places, numbers within 1e-12 (relative)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_agree(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_agree(x, y) for x, y in zip(a, b, strict=True))
    if a is None or b is None:
        return a is b
    return a == pytest.approx(b, rel=1e-12, abs=1e-12) or (a != a and b != b)


@pytest.mark.parametrize("kind", ["classification", "regression", "multilabel", "multitask"])
def test_stacked_metrics_equal_each_models_own(kind):
    """`Task.metrics_stacked` (the stacked trainer's per-epoch scoring) = `Task.metrics` per model, every task kind.

    Outputs are random; one classification model predicts a single class (empty confidence bins, a
    class never predicted) and the first dataset of each kind gives the targets (absent classes too).
    """
    from hydra.utils import instantiate

    from lossbench.config import CONFIG_DIR, compose
    from lossbench.tasks.compatible import options_for

    data = instantiate(compose([f"dataset={options_for(CONFIG_DIR, 'dataset', kind)[0]}"]).dataset).load()
    y = data.test.y[:300]
    g = torch.Generator().manual_seed(0)
    outputs = torch.randn(4, len(y), data.task.output_width, generator=g) * 3
    outputs[3] = 0.0
    outputs[3, :, 0] = 5.0
    task = data.task
    stacked = task.metrics_stacked(outputs, y, task.many_threshold, task.few_threshold, ece_bins=15)
    alone = [task.metrics(o, y, task.many_threshold, task.few_threshold, ece_bins=15) for o in outputs]
    assert len(stacked) == 4 and all(_agree(a, s) for a, s in zip(alone, stacked, strict=True))
