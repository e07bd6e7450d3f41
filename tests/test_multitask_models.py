"""Multi-task models: shared trunk, one head per sub-task, outputs concatenated."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import get_class, instantiate

from lossbench.config import compose, options
from lossbench.models.multitask import MultiLeNet, MultiTaskModel

MULTI = [
    m
    for m in options("model")
    if issubclass(get_class(compose([f"model={m}"]).model._target_), MultiTaskModel)
]
SHAPES = {"multi_lenet": (1, 28, 28), "multi_mlp": (10,)}


@pytest.mark.parametrize("name", MULTI)
def test_multitask_model_contract(name):
    shape = SHAPES[name]
    model = instantiate(
        compose([f"model={name}"]).model, input_shape=list(shape), num_classes=11, head_widths=[10, 1]
    )
    model.eval()
    x = torch.randn(3, *shape)
    out = model(x)
    assert out.shape == (3, 11) and torch.allclose(model.head(model.features(x)), out)
    shared, specific = list(model.shared_parameters()), list(model.task_parameters())
    assert len(shared) + len(specific) == len(list(model.parameters())) and shared and specific
    # head t only moves output columns of task t
    out[:, 10].sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in model.head.heads[0].parameters())
    assert all(p.grad.any() for p in model.head.heads[1].parameters())
    with pytest.raises(Exception, match="sum to"):
        instantiate(
            compose([f"model={name}"]).model, input_shape=list(shape), num_classes=12, head_widths=[10, 1]
        )


def test_multilenet_layout_of_sener_and_koltun():
    model = MultiLeNet([1, 28, 28], 20, [10, 10])
    assert model.fc[0].in_features == 320 and model.features(torch.zeros(2, 1, 28, 28)).shape == (2, 50)
