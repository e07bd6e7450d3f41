import math

import pytest
import torch
import torch.nn.functional as F

from lossbench.config import compose
from lossbench.weighting import build_weighting, class_weights


def test_sqrt_inverse_frequency_is_inverse_frequency_with_power_half():
    # (1/sqrt(4), 1/sqrt(1)) = (0.5, 1) -> normalised to sum 2: (2/3, 4/3)
    torch.testing.assert_close(class_weights("sqrt_inverse_frequency", [4, 1]), torch.tensor([2 / 3, 4 / 3]))


def test_ib_class_weights_are_normalised_inverse_frequency():
    # counts (3, 1): (1/3, 1) -> sum 2: (0.5, 1.5)
    torch.testing.assert_close(class_weights("ib", [3, 1]), torch.tensor([0.5, 1.5]))


def ib_batch():
    """Two examples worked on paper (counts (3, 1), alpha 1000, epsilon 0.001).

    Example 0: z = (0, 0), y = 0: p = (1/2, 1/2), ||p - e_0||_1 = 1; h = (1, -2), ||h||_1 = 3;
      influence 3, weight 0.5 * 1000 / 3.001.
    Example 1: z = (0, ln 3), y = 1: p = (1/4, 3/4), ||p - e_1||_1 = 1/2; h = (1, 1), ||h||_1 = 2;
      influence 1, weight 1.5 * 1000 / 1.001.
    """
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]], dtype=torch.float64)
    feats = torch.tensor([[1.0, -2.0], [1.0, 1.0]], dtype=torch.float64)
    return logits, torch.tensor([0, 1]), feats


def test_ib_weights_hand_worked():
    w = build_weighting("ib", [3, 1], start_epoch=0)
    logits, y, feats = ib_batch()
    torch.testing.assert_close(w.influence(y, logits, feats), torch.tensor([3.0, 1.0], dtype=torch.float64))
    weights = torch.tensor([500 / 3.001, 1500 / 1.001], dtype=torch.float64)
    torch.testing.assert_close(w.example_weights(y, logits, feats), weights)
    losses = torch.tensor([1.0, 2.0], dtype=torch.float64)
    expected = (500 / 3.001 * 1 + 1500 / 1.001 * 2) / (500 / 3.001 + 1500 / 1.001)  # = 1.89994...
    assert w(losses, y, logits, feats).item() == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(1.89994, abs=1e-5)


def test_ib_is_the_plain_mean_before_start_epoch():
    w = build_weighting("ib", [3, 1], start_epoch=2)
    logits, y, feats = ib_batch()
    losses = torch.tensor([1.0, 2.0], dtype=torch.float64)
    w.on_epoch_start(1)
    assert w(losses, y, logits, feats).item() == pytest.approx(1.5)
    w.on_epoch_start(2)
    assert w(losses, y, logits, feats).item() == pytest.approx(1.89994, abs=1e-5)


def test_ib_gradient_is_the_references_rescaled():
    """Reference (pseulki/IB-Loss `IBLoss`): mean_i(CE_i * c_y * alpha / (influence_i + eps)), nothing detached.

    Ours divides by the detached sum of the weights instead of N, so the gradient is the reference's
    times N / sum(w): the same direction.
    """
    g = torch.Generator().manual_seed(0)
    counts = [50, 20, 5]
    h0, y = torch.randn(8, 4, generator=g, dtype=torch.float64).relu(), torch.randint(0, 3, (8,), generator=g)
    head = torch.randn(4, 3, generator=g, dtype=torch.float64)
    c = class_weights("ib", counts).double()

    def reference(h):
        z = h @ head
        grads = (F.softmax(z, dim=1) - F.one_hot(y, 3)).abs().sum(1)
        ib = 1000.0 / (grads * h.abs().sum(1) + 0.001)
        return (F.cross_entropy(z, y, reduction="none", weight=c) * ib).mean()

    w = build_weighting("ib", counts, start_epoch=0)

    def ours(h):
        z = h @ head
        return w(F.cross_entropy(z, y, reduction="none"), y, z, h)

    h_ref, h_ours = h0.clone().requires_grad_(True), h0.clone().requires_grad_(True)
    reference(h_ref).backward()
    ours(h_ours).backward()
    scale = len(y) / w.example_weights(y, h0 @ head, h0).sum()
    torch.testing.assert_close(h_ours.grad, h_ref.grad * scale)
    # and the value is the weighted mean (one convention for every weighting)
    weights = w.example_weights(y, h0 @ head, h0)
    per = F.cross_entropy(h0 @ head, y, reduction="none")
    torch.testing.assert_close(ours(h0), (weights * per).sum() / weights.sum())


def test_ib_detached_gradient_is_the_weighted_ce_gradient_with_constant_weights():
    g = torch.Generator().manual_seed(1)
    counts = [50, 20, 5]
    z0, y = torch.randn(8, 3, generator=g, dtype=torch.float64), torch.randint(0, 3, (8,), generator=g)
    h = torch.rand(8, 4, generator=g, dtype=torch.float64)
    w = build_weighting("ib", counts, start_epoch=0, detach=True)
    weights = w.example_weights(y, z0, h)
    z = z0.clone().requires_grad_(True)
    w(F.cross_entropy(z, y, reduction="none"), y, z, h).backward()
    z_const = z0.clone().requires_grad_(True)
    ((weights * F.cross_entropy(z_const, y, reduction="none")).sum() / weights.sum()).backward()
    torch.testing.assert_close(z.grad, z_const.grad)
    z_free = z0.clone().requires_grad_(True)  # not detached: the influence adds gradient
    build_weighting("ib", counts, start_epoch=0)(
        F.cross_entropy(z_free, y, reduction="none"), y, z_free, h
    ).backward()
    assert not torch.allclose(z_free.grad, z.grad)


def test_ib_start_epoch_follows_trainer_epochs():
    assert compose(["weighting=ib", "trainer.epochs=200"]).weighting.start_epoch == 100  # as in the reference


@pytest.mark.parametrize("params", [{"alpha": 0}, {"epsilon": 0}, {"start_epoch": -1}])
def test_ib_invalid_parameters_raise(params):
    with pytest.raises(Exception, match="must be > 0|must be >= 0"):
        build_weighting("ib", [3, 1], **params)
