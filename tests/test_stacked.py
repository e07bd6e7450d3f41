"""Stacked runs (`train/stacked.py`): members train as they would alone; divergence and resume per member."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa
import torch
import torch.nn.functional as F

from lossbench import run
from lossbench.data.augment import RandomCropFlip
from lossbench.data.spec import DataSpec, Split
from lossbench.losses.cross_entropy import CrossEntropyLoss
from lossbench.losses.focal import FocalLoss
from lossbench.models.lenet import LeNet
from lossbench.models.mlp import MLP
from lossbench.models.resnet_cifar import ResNetCifar
from lossbench.samplers.instance import InstanceSampler
from lossbench.store.db import Store, runs
from lossbench.tasks.base import prepare
from lossbench.tasks.classification import ClassificationTask
from lossbench.train.checkpoint import rng_state
from lossbench.train.config import TrainerConfig
from lossbench.train.loop import Diverged, FitResult, fit
from lossbench.train.stacked import Member, fit_stacked, unstackable
from lossbench.weighting.none import NoWeighting
from tests.conftest import small_cfg

TOL = 1e-4  # metrics of a stacked member vs the same run alone (CPU; float rounding of grouped kernels)


def _images(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g))


TRAIN = _images(48, 0)
COUNTS = tuple(torch.bincount(TRAIN.y, minlength=4).tolist())
DATA_TASK = ClassificationTask(COUNTS)
DATA = DataSpec(name="t", train=TRAIN, val=_images(16, 1), test=_images(16, 2), task=DATA_TASK,
                input_shape=(3, 8, 8), augment=RandomCropFlip(1))  # fmt: skip
CFG = TrainerConfig(epochs=2, batch_size=16, device="cpu", progress=False)


# LeNet's smallest images are 12 x 12 (two 5x5 convolutions, two poolings): the same set, upsampled
DATA_12 = dataclasses.replace(DATA, input_shape=(3, 12, 12), **{
    s: Split(F.interpolate(getattr(DATA, s).x, size=12), getattr(DATA, s).y) for s in ("train", "val", "test")
})  # fmt: skip
MODELS = {  # a conv net with BatchNorm (vmap); plain MLPs with either head and LeNet (the chain path)
    "resnet": lambda shape: ResNetCifar(shape, 4, blocks_per_stage=1),
    "mlp": lambda shape: MLP(shape, 4, hidden=(16, 8)),
    "mlp_cosine_head": lambda shape: MLP(shape, 4, hidden=(16,), head="normed"),
    "lenet": lambda shape: LeNet(shape, 4),
    "lenet_cosine_head": lambda shape: LeNet(shape, 4, head="normed"),
}


def _data(model: str) -> DataSpec:
    return DATA_12 if model.startswith("lenet") else DATA


def _member(
    seed: int, loss_cls=CrossEntropyLoss, on_epoch_end=None, model: str = "resnet", weighting_cls=NoWeighting
) -> Member:
    """A run's pieces built as `run.py` builds them: seed, model, RNG state, fitted components."""
    torch.manual_seed(seed)
    model = MODELS[model](_data(model).input_shape)
    state = rng_state()
    loss, weighting, sampler = loss_cls(), weighting_cls(), InstanceSampler()
    prepare(DATA_TASK, TRAIN.y, loss, weighting, sampler)
    return Member(model, loss, weighting, sampler, seed, state, on_epoch_end)


def _numbers(result: FitResult) -> dict[str, float]:
    return {
        k: v
        for k, v in result.metrics.items()
        if isinstance(v, float) and k not in ("train_time_s", "peak_mem_mb")
    }


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("cfg", [CFG, dataclasses.replace(CFG, max_steps=1)], ids=["whole", "max_steps"])
def test_stacked_members_agree_with_training_alone(cfg, model):
    specs = [(0, CrossEntropyLoss), (1, FocalLoss)]
    stacked = fit_stacked([_member(s, cls, model=model) for s, cls in specs], _data(model), cfg)
    for (seed, cls), together in zip(specs, stacked, strict=True):
        m = _member(seed, cls, model=model)
        alone = fit(m.model, m.loss, m.weighting, m.sampler, _data(model), cfg, seed=seed)
        assert isinstance(together, FitResult) and together.execution["stacked_members"] == 2
        a, b = _numbers(alone), _numbers(together)
        assert a.keys() == b.keys() and all(abs(a[k] - b[k]) <= TOL for k in a), seed
        assert [r["train/loss"] for r in together.history] == pytest.approx(
            [r["train/loss"] for r in alone.history], abs=TOL
        )


def test_members_with_equal_recipes_share_one_objective_call_and_agree_with_training_alone(monkeypatch):
    """A grid's seeds of one recipe: one loss call per recipe and step, each member as it trains alone."""
    from lossbench.weighting.inverse_frequency import InverseFrequencyWeighting

    recipes = {
        "ce/inv": (CrossEntropyLoss, InverseFrequencyWeighting),
        "focal/none": (FocalLoss, NoWeighting),
    }
    specs = [("ce/inv", 0), ("focal/none", 0), ("ce/inv", 1), ("focal/none", 1), ("ce/inv", 2)]  # interleaved
    members = []
    for key, seed in specs:
        m = _member(seed, recipes[key][0], model="mlp", weighting_cls=recipes[key][1])
        m.objective = key
        members.append(m)
    calls: list[int] = []
    for cls in (CrossEntropyLoss, FocalLoss):
        forward = cls.forward
        monkeypatch.setattr(
            cls, "forward", lambda self, z, y, f=forward: calls.append(len(z)) or f(self, z, y)
        )
    stacked = fit_stacked(members, DATA, CFG)
    steps = CFG.epochs * -(-len(TRAIN.y) // CFG.batch_size)
    assert sorted(set(calls)) == [2 * CFG.batch_size, 3 * CFG.batch_size] and len(calls) == 2 * steps
    monkeypatch.undo()
    for (key, seed), together in zip(specs, stacked, strict=True):
        m = _member(seed, recipes[key][0], model="mlp", weighting_cls=recipes[key][1])
        alone = fit(m.model, m.loss, m.weighting, m.sampler, DATA, CFG, seed=seed)
        a, b = _numbers(alone), _numbers(together)
        assert a.keys() == b.keys() and all(abs(a[k] - b[k]) <= TOL for k in a), (key, seed)


def test_members_with_unequal_recipe_states_do_not_share_a_call():
    """The same `objective` key but different fitted weights (a caller's mistake) keeps members apart."""
    from lossbench.train.stacked import _Objectives
    from lossbench.weighting.inverse_frequency import InverseFrequencyWeighting

    members = [_member(s, model="mlp", weighting_cls=InverseFrequencyWeighting) for s in range(3)]
    for m in members:
        m.objective = "same"
    members[2].weighting.target_weights = members[2].weighting.target_weights.flip(0)
    assert _Objectives(members, [0, 1, 2], torch.device("cpu")).parts == [[0, 1], [2]]
    members[1].objective = None
    assert _Objectives(members, [0, 1, 2], torch.device("cpu")).parts == [[0], [1], [2]]


@pytest.mark.parametrize("model", list(MODELS))
def test_the_chain_forward_equals_vmap(model):
    """Plain MLPs and LeNets take `_chain_forward` (batched matmuls, grouped convolutions), equal to vmap."""
    from torch.func import functional_call, stack_module_state, vmap

    from lossbench.train.stacked import _chain_forward, _FeaturesAndLogits

    wrappers = [_FeaturesAndLogits(_member(s, model=model).model) for s in range(3)]
    fast = _chain_forward(wrappers[0].model)
    assert (fast is None) == (model == "resnet")
    if fast is None:
        return
    params, buffers = stack_module_state(wrappers)

    def forward(p, b, xb):
        return functional_call(wrappers[0], (p, b), (xb,))

    shape = _data(model).input_shape
    x = torch.randn(3, 5, *shape)
    for got, want in zip(fast(params, x), vmap(forward)(params, buffers, x), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    got, want = (
        torch.autograd.grad(fast(params, x)[1].square().sum(), list(params.values())),
        torch.autograd.grad(vmap(forward)(params, buffers, x)[1].square().sum(), list(params.values())),
    )
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
    shared = torch.randn(7, *shape)
    want = vmap(forward, in_dims=(0, 0, None))(params, buffers, shared)[1]
    torch.testing.assert_close(fast(params, shared, shared=True)[1], want, rtol=1e-5, atol=1e-6)

    class Wider(type(wrappers[0].model)):  # a subclass may compute its features otherwise: vmap
        pass

    assert _chain_forward(Wider(shape, 4)) is None


@pytest.mark.parametrize("model", ["resnet", "mlp"])
def test_members_with_their_own_lr_and_weight_decay_agree_with_training_alone(model):
    """A study's trials stack with one learning rate and weight decay per member (the schedule shared)."""
    own = [(0, 0.05, 1e-4), (1, 0.2, 5e-3)]
    cfg = dataclasses.replace(CFG, epochs=3, warmup_epochs=1, lr_min=0.001)
    members = [_member(seed, model=model) for seed, _, _ in own]
    for m, (_, lr, wd) in zip(members, own, strict=True):
        m.lr, m.weight_decay = lr, wd
    stacked = fit_stacked(members, DATA, cfg)
    for (seed, lr, wd), together in zip(own, stacked, strict=True):
        m = _member(seed, model=model)
        alone = fit(
            m.model,
            m.loss,
            m.weighting,
            m.sampler,
            DATA,
            dataclasses.replace(cfg, lr=lr, weight_decay=wd),
            seed=seed,
        )
        a, b = _numbers(alone), _numbers(together)
        assert a.keys() == b.keys() and all(abs(a[k] - b[k]) <= TOL for k in a), seed
        assert [r["lr"] for r in together.history] == pytest.approx(
            [r["lr"] for r in alone.history], rel=1e-12
        )


def test_what_trains_alone():
    m = _member(0)  # a conv net
    assert unstackable(m.model, m.loss, m.weighting) is None  # the components themselves allow stacking
    assert "conv net" in unstackable(m.model, m.loss, m.weighting, cfg=CFG)  # on CPU it would be slower
    mlp = MLP((3, 8, 8), 4)
    assert unstackable(mlp, m.loss, m.weighting, cfg=CFG) is None
    assert (
        unstackable(LeNet((3, 12, 12), 4), m.loss, m.weighting, cfg=CFG) is None
    )  # grouped convolutions: faster
    assert "clipping" in unstackable(mlp, m.loss, m.weighting, cfg=dataclasses.replace(CFG, grad_clip=5.0))


class _PoisonedLoss(CrossEntropyLoss):
    """Cross-entropy that turns infinite from the second epoch on (the test's diverging member)."""

    def forward(self, logits, targets):
        out = super().forward(logits, targets)
        return out * float("inf") if self.calls >= 1 else out

    calls = 0


def test_a_diverging_member_is_masked_and_the_others_go_on():
    members = [_member(0), _member(1)]
    members[1].loss = _PoisonedLoss()
    prepare(DATA_TASK, TRAIN.y, members[1].loss)

    def count(row, loss=members[1].loss):
        loss.calls += 1

    members[1].on_epoch_end = count
    results = fit_stacked(members, DATA, CFG)
    assert isinstance(results[1], Diverged) and results[1].epoch == 1
    assert isinstance(results[0], FitResult) and len(results[0].history) == CFG.epochs
    (alone,) = fit_stacked([_member(0)], DATA, CFG)
    assert _numbers(results[0]) == pytest.approx(_numbers(alone), abs=TOL)


def test_a_stacked_group_resumes_from_its_checkpoint(tmp_path):
    cfg = TrainerConfig(epochs=2, batch_size=16, device="cpu", progress=False, checkpoint_every=1)
    whole = fit_stacked([_member(0), _member(1)], DATA, cfg)

    def crash(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt  # not an Exception: ends the whole group, as a kill would

    with pytest.raises(KeyboardInterrupt):
        fit_stacked([_member(0, on_epoch_end=crash), _member(1)], DATA, cfg, checkpoint_dir=tmp_path)
    resumed = fit_stacked([_member(0), _member(1)], DATA, cfg, checkpoint_dir=tmp_path)
    for a, b in zip(whole, resumed, strict=True):
        assert b.resumed_from == 0 and _numbers(a) == _numbers(b)


def test_a_grid_trains_stacked_and_records_exactly_one_diverged(tmp_path):
    """Through `run.py`: two cells that differ in a loss scalar train as one group; tau=1e39 diverges."""
    url = f"sqlite:///{tmp_path}/s.db"
    run.SESSION.pending = []
    try:
        for tau in ("1.0", "1e39"):
            cfg, choices = small_cfg(["loss=logit_adjusted", f"loss.tau={tau}"], store_url=url)
            assert run.run_cell(cfg, choices) == "deferred"
        run.run_pending()
    finally:
        run.SESSION.pending = None
    with Store(url).engine.connect() as conn:
        rows = conn.execute(sa.select(runs.c.status, runs.c.environment)).mappings().all()
    assert sorted(r["status"] for r in rows) == ["completed", "diverged"]
    done = next(r for r in rows if r["status"] == "completed")
    assert done["environment"]["execution"]["stacked_members"] == 2
    cfg, choices = small_cfg(["loss=logit_adjusted", "loss.tau=1.0"], store_url=url)
    assert run.run_group([(cfg, choices)]) == []  # completed members are left out of a group
