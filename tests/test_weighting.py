import pytest
import torch

from lossbench.weighting import build_weighting, class_weights
from tests.conftest import options_for

COUNTS = [60, 20, 5]
WEIGHTINGS = options_for("weighting")  # on class counts (regression-only ones: tests/test_regression.py)


def batch(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, generator=g) * 3, torch.randint(0, 3, (n,), generator=g)


def active(name):
    w = build_weighting(name, COUNTS)
    w.on_epoch_start(10_000)  # deferred recipes switch on
    return w


@pytest.mark.parametrize("name", WEIGHTINGS)
def test_class_weights_sum_to_num_classes(name):
    w = class_weights(name, COUNTS)
    assert w.shape == (3,) and w.sum().item() == pytest.approx(3.0, rel=1e-6) and (w > 0).all()


def test_none_is_the_mean():
    losses, y = batch()
    z = torch.zeros(12, 3)
    torch.testing.assert_close(build_weighting("none", COUNTS)(losses, y, z, z), losses.mean())


def test_inverse_frequency_hand_worked():
    torch.testing.assert_close(class_weights("inverse_frequency", [30, 10]), torch.tensor([0.5, 1.5]))
    # power 0.5: (1/sqrt(4), 1/sqrt(1)) = (0.5, 1) -> normalised to sum 2: (2/3, 4/3)
    torch.testing.assert_close(
        class_weights("inverse_frequency", [4, 1], power=0.5), torch.tensor([2 / 3, 4 / 3])
    )


def test_effective_number_hand_worked():
    # beta = 0.5, counts (2, 1): (1-b)/(1-b^n) = (0.5/0.75, 0.5/0.5) = (2/3, 1) -> sum 2: (0.8, 1.2)
    torch.testing.assert_close(class_weights("effective_number", [2, 1], beta=0.5), torch.tensor([0.8, 1.2]))
    torch.testing.assert_close(class_weights("effective_number", [9, 1], beta=0.0), torch.ones(2))


def test_weighted_mean_follows_pytorch_convention():
    logits, y = torch.randn(10, 3), torch.randint(0, 3, (10,))
    w = build_weighting("inverse_frequency", COUNTS)
    per = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    expected = torch.nn.functional.cross_entropy(logits, y, weight=w.target_weights)
    torch.testing.assert_close(w(per, y, logits, logits), expected)


def test_drw_is_uniform_until_start_epoch():
    w = build_weighting("drw", COUNTS, start_epoch=3, beta=0.999)
    losses, y = batch()
    z = torch.zeros(12, 3)
    w.on_epoch_start(2)
    torch.testing.assert_close(w(losses, y, z, z), losses.mean())
    w.on_epoch_start(3)
    torch.testing.assert_close(w.target_weights, class_weights("effective_number", COUNTS, beta=0.999))
    assert not torch.allclose(w(losses, y, z, z), losses.mean())


def test_drw_start_epoch_follows_trainer_epochs():
    from lossbench.config import compose

    assert compose(["weighting=drw", "trainer.epochs=200"]).weighting.start_epoch == 160


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("effective_number", {"beta": 1.0}),
        ("drw", {"beta": -0.1}),
        ("inverse_frequency", {"power": -1}),
        ("drw", {"start_epoch": -1}),
    ],
)
def test_invalid_parameters_raise(name, params):
    with pytest.raises(Exception, match="must be"):
        build_weighting(name, COUNTS, **params)
