import sqlalchemy as sa
from hydra.utils import instantiate

from lossbench import run
from lossbench.config import compose, compose_with_hydra
from lossbench.store.db import Store, runs
from lossbench.train.config import TrainerConfig
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


def test_ldam_drw_cifar10_experiment_composes():
    cfg = compose_with_hydra(["experiment=ldam_drw_cifar10"])
    assert cfg.hydra.mode.name == "MULTIRUN"
    params = cfg.hydra.sweeper.params
    assert params.loss == "ce,focal,ldam" and params["dataset.imbalance_ratio"] == "100,10"
    assert cfg.dataset._target_.endswith("CIFAR10") and cfg.dataset.val_per_class == 0
    assert cfg.model._target_.endswith("ResNetCifar") and cfg.model.blocks_per_stage == 5
    assert cfg.trainer.epochs == 200
    cell = compose(["experiment=ldam_drw_cifar10", "loss=ldam", "weighting=drw"])
    assert cell.model.head == "normed" and instantiate(cell.weighting).start_epoch == 160


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
