import dataclasses
import math

import pytest
import sqlalchemy as sa
import torch
from hydra.utils import instantiate

from lossbench import run
from lossbench.config import compose, compose_with_hydra
from lossbench.store.db import Store, runs
from lossbench.tasks.base import prepare
from lossbench.train.config import TrainerConfig
from lossbench.train.loop import fit
from tests.conftest import small_cfg


def test_ldam_cifar_preset_is_the_reference_schedule():
    cfg = compose(["trainer=ldam_cifar", "weighting=drw"])
    trainer = TrainerConfig(**cfg.trainer)
    assert (trainer.epochs, trainer.batch_size, trainer.lr, trainer.momentum) == (200, 128, 0.1, 0.9)
    assert trainer.weight_decay == 2e-4 and trainer.warmup_epochs == 5 and trainer.schedule == "step"
    lrs = [trainer.lr * trainer.lr_factor(e) for e in range(200)]
    assert abs(lrs[0] - 0.02) < 1e-12 and lrs[5] == 0.1 and lrs[159] == 0.1
    assert abs(lrs[160] - 1e-3) < 1e-12 and abs(lrs[180] - 1e-5) < 1e-12
    assert instantiate(cfg.weighting).start_epoch == 160


def test_ldam_drw_experiment_composes_the_table2_grid():
    cfg = compose_with_hydra(["experiment=ldam_drw"])
    assert cfg.hydra.mode.name == "MULTIRUN"
    params = cfg.hydra.sweeper.params
    assert params.dataset == "cifar10,cifar100" and params["dataset.imbalance_ratio"] == "100,10"
    assert params["dataset.profile"] == "exp,step" and "ldam_drw" in params.recipe.split(",")
    assert cfg.dataset.val_per_class == 0 and cfg.dataset.selection == "reference"
    assert cfg.model._target_.endswith("ResNetCifar") and cfg.model.blocks_per_stage == 5
    assert cfg.trainer.epochs == 200
    cell = compose(["experiment=ldam_drw", "recipe=ldam_drw", "dataset=cifar100"])
    assert cell.model.head == "normed" and instantiate(cell.weighting).start_epoch == 160
    assert cell.loss._target_.endswith("LDAMLoss") and cell.dataset._target_.endswith("CIFAR100")
    focal = compose(["experiment=ldam_drw", "recipe=cb_focal"])
    assert focal.loss.gamma == 1.0 and focal.weighting.beta == 0.9999


def test_ma_mnist_trainer_is_the_reference_schedule():
    """Ma et al.'s MNIST configs: cosine from 0.01 to eta_min 1e-3 over 50 epochs, Nesterov, clip 5."""
    trainer = TrainerConfig(**compose(["trainer=ma_mnist"]).trainer)
    assert trainer.nesterov and trainer.grad_clip == 5.0 and trainer.weight_decay == 1e-2
    lrs = [trainer.lr * trainer.lr_factor(e) for e in range(50)]
    eta = [
        1e-3 + (0.01 - 1e-3) * (1 + math.cos(math.pi * e / 50)) / 2 for e in range(50)
    ]  # CosineAnnealingLR
    assert lrs == pytest.approx(eta) and lrs[0] == pytest.approx(0.01)


def test_grad_clip_bounds_the_step_and_max_steps_bounds_the_epoch():
    """grad_clip rescales the global gradient norm before the step; max_steps stops the epoch early."""
    cfg, _ = small_cfg(
        ["trainer.grad_clip=1e-6", "trainer.lr=1.0", "trainer.momentum=0", "trainer.weight_decay=0"]
    )
    parts = run.build_components(cfg)
    data = run.load_data(cfg, parts.dataset)
    torch.manual_seed(0)
    model = instantiate(cfg.model, input_shape=list(data.input_shape), num_classes=data.num_classes)
    before = [p.detach().clone() for p in model.parameters()]
    prepare(data.task, data.train.y, parts.loss, parts.weighting, parts.sampler, parts.stage2)
    trainer = dataclasses.replace(parts.trainer, epochs=1, max_steps=1)
    fit(model, parts.loss, parts.weighting, parts.sampler, data, trainer, seed=0)
    moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before, strict=True)])
    assert 0 < moved.norm() < 1.1e-6  # one step of lr 1, gradient clipped to norm 1e-6 (+ float32 rounding)
    with pytest.raises(ValueError, match="grad_clip"):
        TrainerConfig(grad_clip=-1.0)
    with pytest.raises(ValueError, match="max_steps"):
        TrainerConfig(max_steps=-1)


def test_run_without_validation_has_no_best_metrics_and_says_so(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    cfg, choices = small_cfg(["dataset.val_per_class=0"], store_url=url)
    assert run.run_cell(cfg, choices) == "completed"
    with Store(url).engine.connect() as conn:
        row = conn.execute(sa.select(runs)).mappings().one()
    metrics = row["metrics"]
    assert not any(k.startswith("best/") or k.startswith("last/val/") for k in metrics)
    assert "last/test/acc" in metrics and "oracle/test/acc" in metrics and metrics["best_epoch"] is None
    assert "no validation split" in metrics["selection_note"]
    assert row["data_meta"]["sizes"]["val"] == 0
