"""Reference values, limits and independent re-implementations for the loss zoo.

Hand-worked values use tiny logits whose softmax is exact on paper: logits (log 3, 0) give
p = (3/4, 1/4); logits (log .5, log .3, log .2) give p = (.5, .3, .2).
"""

import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from hydra.utils import get_class
from torchvision.ops import sigmoid_focal_loss

from lossbench.config import CONFIG_DIR
from lossbench.losses import build_loss as build_loss_via_hydra
from lossbench.tasks.base import prepare
from lossbench.tasks.classification import classification_stats

COUNTS = [50, 20, 5]
L3 = math.log(3.0)


@functools.cache
def _yaml(name):
    return yaml.safe_load((CONFIG_DIR / "loss" / f"{name}.yaml").read_text())


def build_loss(name, class_counts, **params):
    """`lossbench.losses.build_loss` without the Hydra compose (~0.4 s each): YAML defaults + params."""
    node = dict(_yaml(name))
    target = node.pop("_target_")
    assert set(params) <= set(node), f"{name} has no parameter(s) {set(params) - set(node)}"
    loss = get_class(target)(**{**node, **params})
    prepare(*classification_stats(class_counts), loss)
    return loss


def value(name, logits, targets, counts=COUNTS, **params):
    loss = build_loss(name, counts, **params)
    return loss(torch.tensor(logits, dtype=torch.float64), torch.tensor(targets)).tolist()


def batch(n=64, c=5, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g) * scale, torch.randint(0, c, (n,), generator=g)


def ce(logits, y):
    return F.cross_entropy(logits, y, reduction="none")


@pytest.mark.parametrize(
    ("name", "params"), [("vs", {"gamma": 0.5, "tau": 2.0}), ("cb_sigmoid_focal", {"beta": 0.9})]
)
def test_fast_builder_agrees_with_the_api(name, params):
    logits, y = batch()
    counts = [100, 40, 9, 3, 1]
    expected = build_loss_via_hydra(name, class_counts=counts, **params)(logits, y)
    torch.testing.assert_close(build_loss(name, counts, **params)(logits, y), expected)


# ---------------------------------------------------------------- hand-worked values
def test_label_smoothing_hand_worked():
    # p = (3/4, 1/4), target 0, eps = 0.2, C = 2 -> q = (0.9, 0.1)
    # loss = -0.9 log(3/4) - 0.1 log(1/4) = 0.2589 + 0.1386 = 0.3975
    (out,) = value("label_smoothing", [[L3, 0.0]], [0], epsilon=0.2)
    assert out == pytest.approx(-0.9 * math.log(0.75) - 0.1 * math.log(0.25), rel=1e-6)
    assert out == pytest.approx(0.397543, abs=1e-6)


def test_logit_adjusted_hand_worked():
    # counts (3, 1): pi = (3/4, 1/4); tau = 2, logits 0 -> exp(adjusted) = (9/16, 1/16)
    # target 1: p = (1/16) / (10/16) = 1/10 -> loss = log 10
    (out,) = value("logit_adjusted", [[0.0, 0.0]], [1], counts=[3, 1], tau=2.0)
    assert out == pytest.approx(math.log(10), rel=1e-6)


def test_vs_hand_worked():
    # counts (4, 1), gamma = 1/2, tau = 1: scale = (1, (1/4)^(1/2)) = (1, 1/2), shift = (log .8, log .2)
    # logits (2, 2), target 1: adjusted = (2 + log .8, 1 + log .2)
    # p_1 = .2 e / (.8 e^2 + .2 e) = 1 / (4e + 1) -> loss = log(1 + 4e)
    (out,) = value("vs", [[2.0, 2.0]], [1], counts=[4, 1], gamma=0.5, tau=1.0)
    assert out == pytest.approx(math.log(1 + 4 * math.e), rel=1e-6)


def test_cdt_hand_worked():
    # counts (4, 1), gamma = 1/2: temperatures (1, 4^(1/2)) = (1, 2); logits (2, 2) -> (2, 1)
    # target 1: -log(e / (e^2 + e)) = log(1 + e)
    (out,) = value("cdt", [[2.0, 2.0]], [1], counts=[4, 1], gamma=0.5)
    assert out == pytest.approx(math.log(1 + math.e), rel=1e-6)


def test_poly1_hand_worked():
    # logits (0, 0): CE = log 2, p_t = 1/2; eps = 1 -> log 2 + 1/2
    (out,) = value("poly1", [[0.0, 0.0]], [0], epsilon=1.0)
    assert out == pytest.approx(math.log(2) + 0.5, rel=1e-6)


def test_mae_hand_worked():
    # p = (3/4, 1/4): 1 - p_y = 1/4 (target 0) and 3/4 (target 1)
    out = value("mae", [[L3, 0.0], [L3, 0.0]], [0, 1])
    assert out == pytest.approx([0.25, 0.75], rel=1e-6)


def test_gce_hand_worked():
    # p_y = 1/4, q = 1/2: (1 - (1/4)^(1/2)) / (1/2) = (1 - 1/2) * 2 = 1
    (out,) = value("gce", [[L3, 0.0]], [1], q=0.5)
    assert out == pytest.approx(1.0, rel=1e-6)


def test_sce_hand_worked():
    # p = (3/4, 1/4), target 0: CE = log(4/3); RCE = -log(1e-4) * 1/4 = 4 ln 10 / 4 = ln 10
    # alpha = 0.1, beta = 1: 0.1 log(4/3) + ln 10 = 0.02877 + 2.30259
    (out,) = value("sce", [[L3, 0.0]], [0], alpha=0.1, beta=1.0)
    assert out == pytest.approx(0.1 * math.log(4 / 3) + math.log(10), rel=1e-6)


def test_nce_rce_hand_worked():
    # log p = (log 3/4, log 1/4), target 0: NCE = log(3/4) / (log(3/4) + log(1/4)) = log(3/4) / log(3/16)
    # = 0.2877 / 1.6740 = 0.1719; RCE = ln 10 (as in sce); alpha = beta = 1
    (out,) = value("nce_rce", [[L3, 0.0]], [0], alpha=1.0, beta=1.0)
    assert out == pytest.approx(math.log(0.75) / math.log(3 / 16) + math.log(10), rel=1e-6)


def test_squentropy_hand_worked():
    # logits (1, 2, -2), target 0: CE = log(e + e^2 + e^-2) - 1; squares of wrong logits (4 + 4) / (C - 1) = 4
    (out,) = value("squentropy", [[1.0, 2.0, -2.0]], [0])
    assert out == pytest.approx(math.log(math.e + math.e**2 + math.e**-2) - 1 + 4, rel=1e-6)


def test_z_loss_hand_worked():
    # logits (3, 0, 0): mu = 1, centred (2, -1, -1), var = 6/3 = 2, z_0 = 2 / sqrt 2 = sqrt 2
    # a = 1, b = 2: softplus(2 - sqrt 2) = log(1 + e^0.5858) = 1.0291
    (out,) = value("z_loss", [[3.0, 0.0, 0.0]], [0], a=1.0, b=2.0)
    assert out == pytest.approx(math.log1p(math.exp(2 - math.sqrt(2))), rel=1e-6)
    # a = 2: softplus(2 (2 - sqrt 2)) / 2
    (out,) = value("z_loss", [[3.0, 0.0, 0.0]], [0], a=2.0, b=2.0)
    assert out == pytest.approx(math.log1p(math.exp(2 * (2 - math.sqrt(2)))) / 2, rel=1e-6)


def test_z_loss_is_shift_and_scale_invariant():
    logits, y = batch()
    loss = build_loss("z_loss", COUNTS + [5, 5])
    torch.testing.assert_close(loss(5 * logits + 7, y), loss(logits, y), rtol=1e-4, atol=1e-5)
    assert torch.isfinite(loss(torch.zeros(2, 5), torch.tensor([0, 1]))).all()  # equal logits: z = 0


def test_dual_focal_hand_worked():
    # p = (.5, .3, .2), gamma = 2. p_j = largest probability strictly below p_y:
    # target 0: p_j = .3 -> (1 - .5 + .3)^2 = .64;  target 1: p_j = .2 -> (.9)^2 = .81;
    # target 2: none below -> p_j = 0 -> (.8)^2 = .64
    logits = [[math.log(0.5), math.log(0.3), math.log(0.2)]] * 3
    out = value("dual_focal", logits, [0, 1, 2], gamma=2.0)
    expected = [-0.64 * math.log(0.5), -0.81 * math.log(0.3), -0.64 * math.log(0.2)]
    assert out == pytest.approx(expected, rel=1e-6)


def test_dice_hand_worked():
    # p = (3/4, 1/4), target 0, alpha = 1, gamma = 1: q = (1 - p) p = (3/16, 3/16)
    # class 0 (y = 1): 1 - (2 * 3/16 + 1) / (3/16 + 1 + 1) = 1 - 22/35 = 13/35
    # class 1 (y = 0): 1 - 1 / (3/16 + 1) = 1 - 16/19 = 3/19
    (out,) = value("dice", [[L3, 0.0]], [0], alpha=1.0, gamma=1.0)
    assert out == pytest.approx(13 / 35 + 3 / 19, rel=1e-6)


def test_bce_hand_worked():
    # logits (0, log 3), target 0 -> t = (1, 0): -log sigma(0) - log(1 - 3/4) = log 2 + log 4 = log 8
    (out,) = value("bce", [[0.0, L3]], [0])
    assert out == pytest.approx(math.log(8), rel=1e-6)


def test_sigmoid_focal_hand_worked():
    # logits (0, log 3), t = (1, 0), alpha = .25, gamma = 2
    # class 0: p = 1/2, p_t = 1/2 -> .25 * (1/2)^2 * log 2
    # class 1: p = 3/4, p_t = 1/4 -> .75 * (3/4)^2 * log 4
    (out,) = value("sigmoid_focal", [[0.0, L3]], [0], alpha=0.25, gamma=2.0)
    assert out == pytest.approx(0.25 * 0.25 * math.log(2) + 0.75 * 0.5625 * math.log(4), rel=1e-6)


def test_asymmetric_hand_worked():
    # logits (0, log 3), t = (1, 0), gamma_neg = 4, gamma_pos = 0, clip = .05
    # class 0 (positive): (1 - 1/2)^0 * -log(1/2) = log 2
    # class 1 (negative): p = 3/4, shifted p_m = .7 -> -(.7)^4 log(1 - .7) = -.2401 log .3
    (out,) = value("asymmetric", [[0.0, L3]], [0], gamma_neg=4.0, gamma_pos=0.0, clip=0.05)
    assert out == pytest.approx(math.log(2) - 0.7**4 * math.log(0.3), rel=1e-6)


def test_cb_sigmoid_focal_hand_worked():
    # counts (3, 1), beta = .5: raw w = (.5 / (1 - .125), .5 / .5) = (4/7, 1) -> sum to C=2: (8/11, 14/11)
    loss = build_loss("cb_sigmoid_focal", [3, 1], beta=0.5, gamma=1.0)
    torch.testing.assert_close(loss.class_weights, torch.tensor([8 / 11, 14 / 11]))
    # C = 2: -log(C - 1) = 0, no shift. logits (0, log 3), target 1, gamma = 1:
    # class 0 (negative): p = 1/2 -> (1/2) log 2;  class 1 (positive): p = 3/4 -> (1/4) log(4/3)
    out = loss(torch.tensor([[0.0, L3]], dtype=torch.float64), torch.tensor([1])).item()
    assert out == pytest.approx(14 / 11 * (0.5 * math.log(2) + 0.25 * math.log(4 / 3)), rel=1e-6)


def test_cb_sigmoid_focal_prior_bias_hand_worked():
    # C = 3, equal counts -> weights 1; logits 0 shifted by -log 2 -> sigma = 1/3 for every class
    # gamma = 0: positive -log(1/3) = log 3, each of 2 negatives -log(2/3) -> log 3 + 2 log(3/2)
    (out,) = value("cb_sigmoid_focal", [[0.0, 0.0, 0.0]], [0], counts=[5, 5, 5], gamma=0.0)
    assert out == pytest.approx(math.log(3) + 2 * math.log(1.5), rel=1e-6)
    (off,) = value("cb_sigmoid_focal", [[0.0, 0.0, 0.0]], [0], counts=[5, 5, 5], gamma=0.0, prior_bias=False)
    assert off == pytest.approx(3 * math.log(2), rel=1e-6)


# ---------------------------------------------------------------- limits
@pytest.mark.parametrize(("name", "params"), [
    ("label_smoothing", {"epsilon": 0.0}),
    ("logit_adjusted", {"tau": 0.0}),
    ("vs", {"gamma": 0.0, "tau": 0.0}),
    ("cdt", {"gamma": 0.0}),
    ("poly1", {"epsilon": 0.0}),
    ("sce", {"alpha": 1.0, "beta": 0.0}),
    ("dual_focal", {"gamma": 0.0}),
])  # fmt: skip
def test_limits_reduce_to_cross_entropy(name, params):
    logits, y = batch()
    torch.testing.assert_close(build_loss(name, COUNTS + [9, 9], **params)(logits, y), ce(logits, y))


def test_logit_adjusted_tau_one_is_balanced_softmax():
    logits, y = batch()
    counts = [100, 40, 9, 3, 1]
    torch.testing.assert_close(
        build_loss("logit_adjusted", counts, tau=1.0)(logits, y),
        build_loss("balanced_softmax", counts)(logits, y),
    )


def test_vs_parts_are_cdt_and_logit_adjustment():
    logits, y = batch()
    counts = [100, 40, 9, 3, 1]
    vs = build_loss("vs", counts, gamma=0.4, tau=0.0)(logits, y)
    torch.testing.assert_close(vs, build_loss("cdt", counts, gamma=0.4)(logits, y))
    vs = build_loss("vs", counts, gamma=0.0, tau=0.7)(logits, y)
    torch.testing.assert_close(vs, build_loss("logit_adjusted", counts, tau=0.7)(logits, y))


def test_gce_limits():
    logits, y = batch(scale=1.0)
    near_ce = build_loss("gce", COUNTS, q=1e-4)(logits.double(), y)
    torch.testing.assert_close(near_ce, ce(logits.double(), y), rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(
        build_loss("gce", COUNTS, q=1.0)(logits, y), build_loss("mae", COUNTS)(logits, y)
    )


def test_dice_alpha_zero_is_soft_dice():
    logits, y = batch()
    p, t = F.softmax(logits, 1), F.one_hot(y, 5).float()
    expected = (1 - (2 * p * t + 1) / (p + t + 1)).sum(1)
    torch.testing.assert_close(build_loss("dice", COUNTS, alpha=0.0, gamma=1.0)(logits, y), expected)


def test_bce_matches_torch_summed_over_classes():
    logits, y = batch()
    expected = F.binary_cross_entropy_with_logits(logits, F.one_hot(y, 5).float(), reduction="none").sum(1)
    torch.testing.assert_close(build_loss("bce", COUNTS)(logits, y), expected)


def test_sigmoid_focal_matches_torchvision():
    logits, y = batch()
    t = F.one_hot(y, 5).float()
    for alpha, gamma in [(0.25, 2.0), (0.6, 0.5), (-1.0, 1.0)]:
        expected = sigmoid_focal_loss(logits, t, alpha=alpha, gamma=gamma, reduction="none").sum(1)
        got = build_loss("sigmoid_focal", COUNTS, alpha=alpha, gamma=gamma)(logits, y)
        torch.testing.assert_close(got, expected)


def test_sigmoid_focal_gamma0_without_alpha_is_bce():
    logits, y = batch()
    got = build_loss("sigmoid_focal", COUNTS, alpha=-1.0, gamma=0.0)(logits, y)
    torch.testing.assert_close(got, build_loss("bce", COUNTS)(logits, y))


def test_asymmetric_without_focusing_or_clip_is_bce():
    logits, y = batch(scale=1.0)
    got = build_loss("asymmetric", COUNTS, gamma_neg=0.0, gamma_pos=0.0, clip=0.0)(logits, y)
    torch.testing.assert_close(got, build_loss("bce", COUNTS)(logits, y))


def test_cb_sigmoid_focal_unit_weights_is_sigmoid_focal():
    logits, y = batch()
    got = build_loss("cb_sigmoid_focal", [10] * 5, beta=0.0, gamma=2.0, prior_bias=False)(logits, y)
    torch.testing.assert_close(got, build_loss("sigmoid_focal", COUNTS, alpha=-1.0, gamma=2.0)(logits, y))


# ---------------------------------------------------------------- independent re-implementations
# Straight from the formulas, per example in float64 numpy; the library runs in float32.
def _softmax(row):
    e = np.exp(row - row.max())
    return e / e.sum()


def _mae(row, y):
    return 1.0 - _softmax(row)[y]


def _gce(row, y, q=0.7):
    p = np.clip(_softmax(row), 1e-7, 1.0)
    return (1.0 - p[y] ** q) / q


def _rce(row, y):
    p = np.clip(_softmax(row), 1e-7, 1.0)
    return sum(-p[c] * math.log(1e-4) for c in range(len(row)) if c != y)


def _sce(row, y, alpha=0.1, beta=1.0):
    return alpha * -math.log(_softmax(row)[y]) + beta * _rce(row, y)


def _nce_rce(row, y, alpha=1.0, beta=1.0):
    logp = np.log(_softmax(row))
    return alpha * logp[y] / logp.sum() + beta * _rce(row, y)


def _dual_focal(row, y, gamma=5.0):
    p = _softmax(row)
    below = [p[c] for c in range(len(row)) if p[c] < p[y]]
    return -((1 - p[y] + max(below, default=0.0)) ** gamma) * math.log(p[y])


def _dice(row, y, alpha=0.01, gamma=1.0):
    # the reference's multi-class loop on a batch of one example
    p, total = _softmax(row), 0.0
    for c in range(len(row)):
        q, t = (1 - p[c]) ** alpha * p[c], float(c == y)
        total += 1 - (2 * q * t + gamma) / (q + t + gamma)
    return total


def _asymmetric(row, y, gamma_neg=4.0, gamma_pos=0.0, clip=0.05):
    total = 0.0
    for c, x in enumerate(row):
        p = 1 / (1 + math.exp(-x))
        if c == y:
            total -= (1 - p) ** gamma_pos * math.log(max(p, 1e-8))
        else:
            pm = max(p - clip, 0.0)
            total -= pm**gamma_neg * math.log(max(1 - pm, 1e-8))
    return total


def _squentropy(row, y):
    sq = sum(row[c] ** 2 for c in range(len(row)) if c != y) / (len(row) - 1)
    return -math.log(_softmax(row)[y]) + sq


REFERENCES = {"mae": _mae, "gce": _gce, "sce": _sce, "nce_rce": _nce_rce, "dual_focal": _dual_focal,
              "dice": _dice, "asymmetric": _asymmetric, "squentropy": _squentropy}  # fmt: skip


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_independent_reimplementation(name, seed):
    logits, y = batch(n=32, c=6, seed=seed, scale=4.0)
    got = build_loss(name, [10] * 6)(logits, y)  # float32, YAML defaults
    rows = logits.double().numpy()
    expected = torch.tensor(
        [REFERENCES[name](rows[i], int(y[i])) for i in range(len(y))], dtype=torch.float32
    )
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_cb_sigmoid_focal_matches_reference_formula():
    # the TF reference: modulator = exp(-g t z - g log1p(exp(-z))), weights (N,) tiled over classes,
    # sum / number of positives (= N for single-label data); compare the mean, in float64.
    counts, beta, gamma = [100, 40, 9, 3, 1], 0.99, 0.5
    logits, y = batch(c=5)
    z = logits.double().numpy() - math.log(4)  # prior_bias: -log(C - 1)
    t = np.eye(5)[y.numpy()]
    w = (1 - beta) / (1 - np.power(beta, np.array(counts, dtype=float)))
    w = w / w.sum() * 5
    ce_ = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    modulator = np.exp(-gamma * t * z - gamma * np.log1p(np.exp(-z)))
    expected = ((t @ w)[:, None] * modulator * ce_).sum() / t.sum()
    got = build_loss("cb_sigmoid_focal", counts, beta=beta, gamma=gamma)(logits, y).mean().item()
    assert got == pytest.approx(expected, rel=1e-4)


# ---------------------------------------------------------------- multi-label targets
@pytest.mark.parametrize("name", ["bce", "sigmoid_focal", "asymmetric", "cb_sigmoid_focal"])
def test_multilabel_losses_take_binary_matrices(name):
    logits, y = batch(c=3)
    loss = build_loss(name, COUNTS)
    torch.testing.assert_close(loss(logits, y), loss(logits, F.one_hot(y, 3)))
    two_hot = torch.tensor([[1, 1, 0], [0, 0, 1]])
    out = loss(logits[:2], two_hot)
    assert out.shape == (2,) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="targets must be"):
        loss(logits, torch.zeros(len(y), 4))


def test_bce_two_hot_hand_worked():
    # t = (1, 1), logits (0, log 3): -log(1/2) - log(3/4) = log 2 + log(4/3) = log(8/3)
    out = build_loss("bce", [1, 1])(torch.tensor([[0.0, L3]]), torch.tensor([[1, 1]]))
    assert out.item() == pytest.approx(math.log(8 / 3), rel=1e-6)


# ---------------------------------------------------------------- invalid parameters
@pytest.mark.parametrize(("name", "params", "match"), [
    ("label_smoothing", {"epsilon": 1.5}, "epsilon"),
    ("logit_adjusted", {"tau": -1}, "tau"),
    ("vs", {"gamma": -0.1}, "gamma"),
    ("cdt", {"gamma": -1}, "gamma"),
    ("poly1", {"epsilon": -2}, "epsilon"),
    ("gce", {"q": 0}, "q must be"),
    ("sce", {"beta": -1}, "beta"),
    ("nce_rce", {"alpha": -1}, "alpha"),
    ("z_loss", {"a": 0}, "a must be"),
    ("dual_focal", {"gamma": -1}, "gamma"),
    ("dice", {"gamma": 0}, "gamma"),
    ("sigmoid_focal", {"alpha": 2}, "alpha"),
    ("asymmetric", {"clip": 1.0}, "clip"),
    ("cb_sigmoid_focal", {"beta": 1.0}, "beta"),
])  # fmt: skip
def test_invalid_parameters_raise(name, params, match):
    with pytest.raises(ValueError, match=match):
        build_loss(name, COUNTS, **params)
