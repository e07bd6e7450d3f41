"""Every option of every checked group passes its contract (the checks `lossbench check` runs)."""

import pytest
import torch

from lossbench import contracts
from lossbench.config import options
from lossbench.limits import Limit
from tests.test_datasets import _needs_files

CASES = [
    pytest.param(group, name, id=f"{group}={name}")
    for group in contracts.CHECKS
    for name in options(group)
    if not (group == "dataset" and _needs_files(name))  # file-backed datasets: test_datasets (slow)
]


@pytest.mark.parametrize(("group", "name"), CASES)
def test_option_passes_its_contract(group, name):
    failed = [f"{o.check}: {o.detail}" for o in contracts.check(group, name) if not o.passed]
    assert not failed, failed


def test_declared_limits_are_checked():
    names = [o.check for o in contracts.check("loss", "focal")]
    assert "limit: gamma=0.0 equals ce" in names
    assert any(
        o.startswith("limit: tau=1.0") for o in [o.check for o in contracts.check("loss", "logit_adjusted")]
    )


def test_a_false_limit_fails(monkeypatch):
    from lossbench.losses.focal import FocalLoss

    monkeypatch.setattr(FocalLoss, "limits", (Limit(equals="ce", params={"gamma": 1.0}),))
    outcome = next(o for o in contracts.check("loss", "focal") if o.check.startswith("limit"))
    assert not outcome.passed and "focal with {'gamma': 1.0} != ce" in outcome.detail


@pytest.mark.parametrize(
    ("forward", "broken"),
    [
        (lambda z, y: z.sum(), "shape"),  # reduces
        (lambda z, y: z.gather(1, y[:, None]).squeeze(1).double().abs(), "float64"),  # wrong dtype
        (lambda z, y: z.detach().abs().sum(1), "no gradient"),
        (lambda z, y: torch.log(z.softmax(1) - 0.4).abs().sum(1), "non-finite"),
        (lambda z, y: (z - z.mean()).abs().sum(1), "batch"),  # depends on the whole batch
    ],
)
def test_each_broken_loss_is_caught(monkeypatch, forward, broken):
    from lossbench.losses.cross_entropy import CrossEntropyLoss

    monkeypatch.setattr(CrossEntropyLoss, "forward", lambda self, z, y: forward(z, y))
    failed = [f"{o.check}: {o.detail}" for o in contracts.check("loss", "ce") if not o.passed]
    assert failed and broken in failed[0], failed


def test_a_row_reduction_unlike_forward_is_caught(monkeypatch):
    """A stacked group reduces equal members' batches with `forward_rows`: it must be `forward` per row."""
    from lossbench.weighting.base import ClassWeighting

    monkeypatch.setattr(ClassWeighting, "forward_rows", lambda self, losses, targets: losses.mean(1))
    failed = [
        f"{o.check}: {o.detail}" for o in contracts.check("weighting", "inverse_frequency") if not o.passed
    ]
    assert failed and "forward_rows" in failed[0], failed
    assert all(o.passed for o in contracts.check("weighting", "none"))  # the plain mean is its forward


def test_fit_component_is_the_one_fit_call():
    data = contracts.tiny_data((5, 3, 1))
    loss = contracts.build("loss", "ldam")
    contracts.fit_component("loss", loss, data)
    assert loss.margins.shape == (3,)
