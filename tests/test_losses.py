"""Reference values of the losses; the contract every loss meets is in lossbench.contracts (test_contracts)."""

import math

import pytest
import torch

from lossbench.losses import build_loss
from tests.conftest import options_for

COUNTS = [50, 20, 5]
LOSSES = options_for("loss")  # classification losses (regression ones: tests/test_regression.py)


def batch(n=8, c=3, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g, dtype=dtype) * 3, torch.randint(0, c, (n,), generator=g)


def test_focal_hand_worked():
    # logits (0, 0): p_t = 1/2, CE = log 2; gamma=2 -> (1/2)^2 * log 2
    out = build_loss("focal", COUNTS, gamma=2.0)(torch.zeros(1, 2), torch.tensor([0]))
    assert out.item() == pytest.approx(0.25 * math.log(2), rel=1e-6)


def test_ldam_hand_worked():
    # counts (16, 1): n^-1/4 = (1/2, 1) -> margins (0.25, 0.5) with max_m=0.5.
    loss = build_loss("ldam", [16, 1], max_m=0.5, s=2.0)
    torch.testing.assert_close(loss.margins, torch.tensor([0.25, 0.5]))
    # target 1, logits (0, 0): shifted (0, -0.5) * 2 = (0, -1); CE = log(1 + e) - (-1) ... = -log(e^-1/(1+e^-1))
    out = loss(torch.zeros(1, 2), torch.tensor([1]))
    assert out.item() == pytest.approx(math.log(1 + math.e), rel=1e-6)


def test_balanced_softmax_hand_worked():
    # counts (3, 1), logits 0: adjusted logits (log 3, 0); target 1 -> -log(1/4)
    out = build_loss("balanced_softmax", [3, 1])(torch.zeros(1, 2), torch.tensor([1]))
    assert out.item() == pytest.approx(math.log(4), rel=1e-6)


@pytest.mark.parametrize(("name", "params", "match"), [
    ("focal", {"gamma": -1}, "gamma"),
    ("ldam", {"max_m": -0.1}, "max_m"),
    ("ldam", {"s": 0}, "s must be"),
])  # fmt: skip
def test_invalid_parameters_raise(name, params, match):
    with pytest.raises(Exception, match=match):
        build_loss(name, COUNTS, **params)


def test_unknown_loss_lists_valid_options():
    with pytest.raises(ValueError, match="valid options: .*focal"):
        build_loss("nope", COUNTS)


def test_unknown_parameter_is_named():
    with pytest.raises(ValueError, match="no parameter 'gama'"):
        build_loss("focal", COUNTS, gama=1.0)
