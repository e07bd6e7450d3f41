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


def test_yang_imbalanced_regression_rows_are_their_flag_combinations():
    """Each recipe is one of their train.py flag sets (--loss, --reweight, --lds 5/2); step lr x0.1 at 60 and 80."""
    flags = {  # recipe: (loss, reweight, lds)
        "dir_vanilla": ("l1", "none", False), "dir_sqinv": ("l1", "sqrt_inv", False),
        "dir_inv": ("l1", "inverse", False), "dir_focal_r": ("focal_l1", "none", False),
        "dir_lds": ("l1", "sqrt_inv", True), "dir_inv_lds": ("l1", "inverse", True),
        "dir_focal_r_lds": ("focal_l1", "sqrt_inv", True),
    }  # fmt: skip
    params = compose_with_hydra(["experiment=yang_imbalanced_regression"]).hydra.sweeper.params
    assert sorted(params.recipe.split(",")) == sorted(flags)
    for recipe, (loss, reweight, lds) in flags.items():
        cfg = compose(["experiment=yang_imbalanced_regression", f"recipe={recipe}"])
        assert cfg.loss._target_.rsplit(".", 1)[-1] == (
            "L1Loss" if loss == "l1" else "FocalRegressionLoss"
        ), recipe
        if loss == "focal_l1":
            assert (cfg.loss.base, cfg.loss.beta, cfg.loss.gamma, cfg.loss.activate) == (
                "l1",
                0.2,
                1.0,
                "sigmoid",
            )
        if reweight == "none":
            assert cfg.weighting._target_.endswith("NoWeighting"), recipe
            continue
        w = cfg.weighting
        assert (w.reweight, w.smooth) == (reweight, lds), recipe
        if lds:
            assert (w.kernel, w.ks, w.sigma) == ("gaussian", 5, 2.0)
    trainer = TrainerConfig(**compose(["experiment=yang_imbalanced_regression"]).trainer)
    lrs = [trainer.lr * trainer.lr_factor(e) for e in range(trainer.epochs)]
    assert (
        trainer.epochs == 90
        and lrs[59] == 0.01
        and lrs[60] == pytest.approx(1e-3)
        and lrs[80] == pytest.approx(1e-4)
    )


def test_sener_koltun_schedule_is_their_loop():
    """train_multi_task.py: 100 epochs, lr *= 0.85 at the start of each epoch with (epoch + 1) % 10 == 0."""
    cfg = compose(["experiment=sener_koltun_multimnist", "task_weighting=mgda"])
    trainer = TrainerConfig(**cfg.trainer)
    theirs, lr = [], trainer.lr
    for epoch in range(100):
        if (epoch + 1) % 10 == 0:
            lr *= 0.85
        theirs.append(lr)
    assert trainer.epochs == 100 and trainer.momentum == 0.9 and trainer.weight_decay == 0.0
    assert [trainer.lr * trainer.lr_factor(e) for e in range(100)] == pytest.approx(theirs, rel=1e-12)
    assert cfg.task_weighting.upper_bound and cfg.task_weighting.normalization == "loss+"
    assert cfg.model._target_.endswith("MultiLeNet") and cfg.dataset._target_.endswith("MultiItems")
    stl = compose_with_hydra(["experiment=sener_koltun_multimnist_stl"])
    assert stl.hydra.sweeper.params["dataset.tasks"] == "[left],[right]" and stl.trainer == cfg.trainer
