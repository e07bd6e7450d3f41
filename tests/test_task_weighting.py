"""Task weightings: the contract for every option, and hand-worked cases for each method."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lossbench.config import CONFIG_DIR, options
from lossbench.task_weighting.aligned_mtl import aligned_weights
from lossbench.task_weighting.base import task_gradients
from lossbench.task_weighting.cagrad import cagrad_direction
from lossbench.task_weighting.db_mtl import DualBalancing
from lossbench.task_weighting.dwa import dwa_weights
from lossbench.task_weighting.famo import FAMO
from lossbench.task_weighting.gradnorm import GradNorm
from lossbench.task_weighting.imtl import imtl_weights
from lossbench.task_weighting.mgda import min_norm_weights
from lossbench.task_weighting.nash_mtl import nash_weights
from lossbench.task_weighting.pcgrad import project_conflicting
from lossbench.task_weighting.uncertainty import UncertaintyWeighting


def make(name: str):
    return instantiate(OmegaConf.load(CONFIG_DIR / "task_weighting" / f"{name}.yaml"))


class TwoHeads(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
        self.heads = torch.nn.ModuleList([torch.nn.Linear(8, 3), torch.nn.Linear(8, 1)])

    def losses(self, x, y, z):
        feats = self.trunk(x)
        a = torch.nn.functional.cross_entropy(self.heads[0](feats), y)
        b = torch.nn.functional.mse_loss(self.heads[1](feats).squeeze(1), z)
        return torch.stack([a, b]), feats


def one_batch(name: str, seed: int):
    """A fitted method, a seeded two-head model, and its task losses and features on 8 random rows."""
    torch.manual_seed(seed)
    model, method = TwoHeads(), make(name)
    method.fit(2)
    losses, feats = model.losses(torch.randn(8, 4), torch.randint(0, 3, (8,)), torch.randn(8))
    return model, method, losses, feats


@pytest.mark.parametrize("name", options("task_weighting"))
def test_task_weighting_contract(name):
    torch.manual_seed(0)
    model, method = TwoHeads(), make(name)
    method.fit(2)
    params = [*model.parameters(), *method.parameters()]
    opt = torch.optim.SGD(params, lr=0.05)
    x, y, z = torch.randn(16, 4), torch.randint(0, 3, (16,)), torch.randn(16)
    for epoch in range(4):  # epoch-level methods (DWA, FAMO, GradNorm) switch on after 1-2 epochs
        method.on_epoch_start(epoch)
        for _ in range(2):
            opt.zero_grad(set_to_none=True)
            losses, feats = model.losses(x, y, z)
            w = method.backward(losses, list(model.trunk.parameters()), list(model.heads.parameters()), feats)
            assert w.shape == (2,) and torch.isfinite(w).all()
            for p in model.parameters():
                assert p.grad is not None and torch.isfinite(p.grad).all()
            opt.step()
    assert len(method.history) == 3
    with pytest.raises(ValueError):
        method.backward(torch.ones(3, requires_grad=True), [], [], None)


def test_equal_weighting_matches_plain_backward():
    model, method, losses, feats = one_batch("equal", seed=0)
    expected = torch.autograd.grad(losses.sum(), list(model.parameters()), retain_graph=True)
    method.backward(losses, list(model.trunk.parameters()), list(model.heads.parameters()), feats)
    for p, g in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, g)


def test_gradient_methods_give_heads_their_own_task_gradient_and_shared_the_combination():
    model, method, losses, feats = one_batch("pcgrad", seed=1)
    shared = list(model.trunk.parameters())
    g = task_gradients(losses, shared)
    head0 = torch.autograd.grad(losses[0], list(model.heads[0].parameters()), retain_graph=True)
    torch.manual_seed(5)
    method.backward(losses, shared, list(model.heads.parameters()), feats)
    for p, e in zip(model.heads[0].parameters(), head0, strict=True):
        torch.testing.assert_close(p.grad, e)
    torch.manual_seed(5)
    order = [torch.randperm(2).tolist() for _ in range(2)]
    expected = project_conflicting(g, order).sum(0)
    got = torch.cat([p.grad.reshape(-1) for p in shared])
    torch.testing.assert_close(got, expected)


def test_uncertainty_objective_and_gradient_by_hand():
    uw = UncertaintyWeighting(init_log_variance=0.0)
    uw.fit(2)
    losses = torch.tensor([1.0, 4.0])
    total, w = uw.objective(losses)
    # s = 0: L/2 + 0 for both tasks
    assert float(total.detach()) == pytest.approx(0.5 + 2.0)
    total.backward()
    # d/ds (L e^-s / 2 + s / 2) = -L e^-s / 2 + 1/2
    torch.testing.assert_close(uw.log_variance.grad, torch.tensor([0.0, -1.5]))
    torch.testing.assert_close(w, torch.tensor([0.5, 0.5]))
    with torch.no_grad():
        uw.log_variance.copy_(torch.log(losses))  # the minimiser s = log L: gradient 0
    total, _ = uw.objective(losses)
    assert float(total.detach()) == pytest.approx(1.0 + 0.5 * math.log(4.0))


def test_dwa_weights_from_a_loss_history():
    assert torch.equal(dwa_weights([], 2, 2.0), torch.ones(2, dtype=torch.float64))
    history = [torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([0.5, 2.0], dtype=torch.float64)]
    assert torch.equal(dwa_weights(history[:1], 2, 2.0), torch.ones(2, dtype=torch.float64))
    # ratios (0.5, 1.0) / T=2 -> 2 softmax(0.25, 0.5)
    e1, e2 = math.exp(0.25), math.exp(0.5)
    expected = torch.tensor([2 * e1 / (e1 + e2), 2 * e2 / (e1 + e2)], dtype=torch.float64)
    torch.testing.assert_close(dwa_weights(history, 2, 2.0), expected)
    method = make("dwa")
    method.fit(2)
    for epoch, losses in enumerate(([1.0, 2.0], [1.0, 2.0], [0.5, 2.0], [0.5, 2.0])):
        method.on_epoch_start(epoch)
        method._record(torch.tensor(losses))  # what backward records per batch
    method.on_epoch_start(4)
    assert len(method.history) == 4


@pytest.mark.parametrize(
    ("g1", "g2", "expected"),
    [
        ((1.0, 0.0), (0.0, 1.0), (0.5, 0.5)),
        ((2.0, 0.0), (0.0, 1.0), (0.2, 0.8)),
        ((1.0, 0.0), (1.0, 1.0), (1.0, 0.0)),
    ],
)
def test_mgda_min_norm_on_two_gradients(g1, g2, expected):
    # min over gamma of ||gamma g1 + (1-gamma) g2||: e.g. (2,0),(0,1): 4 g^2 + (1-g)^2 -> g = 0.2
    w = min_norm_weights(torch.tensor([g1, g2]))
    torch.testing.assert_close(w, torch.tensor(expected, dtype=torch.float64), atol=1e-4, rtol=0)


def test_mgda_three_orthonormal_gradients_get_equal_weights():
    torch.testing.assert_close(min_norm_weights(torch.eye(3)), torch.full((3,), 1 / 3, dtype=torch.float64))


def test_pcgrad_projects_conflicting_gradients():
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # dot = -1: conflicting
    out = project_conflicting(g, [[0, 1], [1, 0]])
    # g1 - (-1)/2 g2 = (0.5, 0.5); g2 - (-1)/1 g1 = (0, 1)
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.5], [0.0, 1.0]]))
    assert float(out[0] @ g[1]) == pytest.approx(0.0) and float(out[1] @ g[0]) == pytest.approx(0.0)
    agreeing = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(project_conflicting(agreeing, [[0, 1], [1, 0]]), agreeing)


def test_gradnorm_weight_update_by_hand():
    gn = GradNorm(alpha=1.0)
    gn.fit(2)
    gn.history = [torch.tensor([1.0, 2.0], dtype=torch.float64)]  # L(0) per task
    grads = torch.tensor([[1.0, 0.0], [0.0, 3.0]])  # norms 1 and 3, weights 1 and 1
    losses = torch.tensor([1.0, 1.0])
    # Ltilde = (1, 0.5), r = (4/3, 2/3); mean norm 2 -> targets (8/3, 4/3)
    loss = gn.balance_loss(grads, losses)
    assert float(loss.detach()) == pytest.approx(5 / 3 + 5 / 3)
    direction, w = gn.combine(grads, losses)
    # dloss/dw = (-1, 3); dw/da = 2 (diag(p) - p p^T) = [[.5, -.5], [-.5, .5]] -> (-2, 2)
    torch.testing.assert_close(gn.logits.grad, torch.tensor([-2.0, 2.0]))
    torch.testing.assert_close(direction, torch.tensor([1.0, 3.0]))
    with torch.no_grad():
        gn.logits -= 0.1 * gn.logits.grad  # the faster-training, larger-gradient task 2 loses weight
    assert gn.weights()[1] < 1 < gn.weights()[0]


def test_cagrad_inner_problem_and_ball_constraint():
    g = torch.tensor([[1.0, 0.0], [-0.5, 1.0]], dtype=torch.float64)
    g0 = g.mean(0)
    d, w = cagrad_direction(g, c=0.5, rescale=0)
    # brute force over the simplex: min_gamma g_w.g0 + c||g0|| ||g_w||
    gammas = torch.linspace(0, 1, 20001, dtype=torch.float64)
    gw = gammas[:, None] * g[0] + (1 - gammas[:, None]) * g[1]
    vals = gw @ g0 + 0.5 * g0.norm() * gw.norm(dim=1)
    assert float(w[0]) == pytest.approx(float(gammas[vals.argmin()]), abs=1e-3)
    assert float((d - g0).norm()) == pytest.approx(0.5 * float(g0.norm()), rel=1e-5)
    d0, _ = cagrad_direction(g, c=0.0, rescale=1)  # c = 0: plain average gradient
    torch.testing.assert_close(d0, g0, atol=1e-6, rtol=0)
    d1, _ = cagrad_direction(g, c=0.5, rescale=1)
    torch.testing.assert_close(d1, d / 1.25)


def test_imtl_equal_projections_by_hand():
    g = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    w = imtl_weights(g)
    # (w1, 2 w2) . e1 == (w1, 2 w2) . e2 and w1 + w2 = 1 -> (2/3, 1/3)
    torch.testing.assert_close(w, torch.tensor([2 / 3, 1 / 3], dtype=torch.float64))
    g3 = torch.tensor([[1.0, 0.2, 0.0], [0.0, 2.0, 0.5], [0.3, 0.0, 3.0]], dtype=torch.float64)
    w3 = imtl_weights(g3)
    proj = (w3 @ g3) @ (g3 / g3.norm(dim=1, keepdim=True)).T
    torch.testing.assert_close(proj, proj[:1].expand(3))
    assert float(w3.sum()) == pytest.approx(1.0)


def test_aligned_mtl_equalises_orthogonal_gradients():
    g = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    w = aligned_weights(g)  # lambda = (1, 4): B = diag(1, 1/2)
    torch.testing.assert_close(w, torch.tensor([1.0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(w @ g, torch.tensor([1.0, 1.0], dtype=torch.float64))


def test_famo_weights_and_logit_update_by_hand():
    famo = FAMO(w_lr=0.025, gamma=0.0)
    famo.fit(2)
    losses = torch.tensor([1.0, 2.0], requires_grad=True)
    total, w = famo.objective(losses)
    # z = (1/2, 1/2), c = 1/2 + 1/4 = 3/4: weights z / (c L) = (2/3, 1/3)
    torch.testing.assert_close(w, torch.tensor([2 / 3, 1 / 3]))
    total.backward()
    torch.testing.assert_close(losses.grad, w)
    famo.update(torch.tensor([1.0, 1.0]), torch.tensor([0.5, 1.0]))
    # delta = (log 2, 0); J_softmax^T delta = (+, -): Adam's first step moves each logit by -lr sign(grad)
    torch.testing.assert_close(famo.xi, torch.tensor([-0.025, 0.025]))


def test_db_mtl_ema_and_rescaling_by_hand():
    db = DualBalancing(beta=0.9, beta_sigma=0.5)
    db.fit(2)
    g = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    d, w = db.combine(g, torch.ones(2))
    # EMA from zero: g + 0.9 (0 - g) = 0.1 g; norms (0.1, 0.3) -> weights (3, 1)
    torch.testing.assert_close(w, torch.tensor([3.0, 1.0]), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(d, torch.tensor([0.3, 0.3]), rtol=1e-6, atol=1e-6)
    db.combine(g, torch.ones(2))
    f = 0.9 / math.sqrt(2)
    torch.testing.assert_close(db.buffer, g + f * (0.1 * g - g))


def test_nash_weights_solve_the_bargaining_condition():
    gram = np.array([[1.0, 0.0], [0.0, 4.0]])
    torch.testing.assert_close(
        torch.as_tensor(nash_weights(gram)), torch.tensor([1.0, 0.5], dtype=torch.float64)
    )
    rng = np.random.default_rng(0)
    g = rng.normal(size=(3, 10))
    m = g @ g.T
    a = nash_weights(m)
    np.testing.assert_allclose(a * (m @ a), np.ones(3), rtol=1e-5)


def test_state_dict_round_trip_restores_history_and_counters():
    method = make("dwa")
    method.fit(2)
    for epoch, losses in enumerate(([1.0, 2.0], [0.5, 2.0], [0.25, 2.0])):
        method.on_epoch_start(epoch)
        method._record(torch.tensor(losses))
    fresh = make("dwa")
    fresh.fit(2)
    fresh.load_state_dict(method.state_dict())
    assert fresh.epoch == 2 and len(fresh.history) == 2 and fresh._count == 1
    torch.testing.assert_close(dwa_weights(fresh.history, 2, 2.0), dwa_weights(method.history, 2, 2.0))
