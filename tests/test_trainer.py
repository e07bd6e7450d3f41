import dataclasses
import math

import pytest
import torch
from hydra.utils import instantiate

from lossbench.losses import build_loss
from lossbench.tasks.base import prepare
from lossbench.train.config import TrainerConfig
from lossbench.train.loop import Diverged, fit
from lossbench.weighting import build_weighting
from tests.conftest import small_cfg


def test_ldam_reference_schedule():
    cfg = TrainerConfig(epochs=200, lr=0.1, warmup_epochs=5, schedule="step", lr_milestones=[160, 180],
                        lr_factors=[0.01, 0.0001])  # fmt: skip
    lrs = [cfg.lr * cfg.lr_factor(e) for e in range(200)]
    assert lrs[0] == pytest.approx(0.02) and lrs[4] == pytest.approx(0.1) and lrs[5] == pytest.approx(0.1)
    assert (
        lrs[159] == pytest.approx(0.1) and lrs[160] == pytest.approx(1e-3) and lrs[180] == pytest.approx(1e-5)
    )


def test_cosine_schedule_ends_near_zero():
    cfg = TrainerConfig(epochs=10, warmup_epochs=0, schedule="cosine")
    assert cfg.lr_factor(0) == 1.0 and cfg.lr_factor(9) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.9)))


@pytest.mark.parametrize(
    "kw",
    [
        {"epochs": 0},
        {"lr": -1},
        {"schedule": "linear"},
        {"select_metric": "test/acc"},
        {"lr_milestones": [1], "lr_factors": []},
    ],
)
def test_invalid_trainer_config(kw):
    with pytest.raises(ValueError):
        TrainerConfig(**kw)


def _parts(overrides=()):
    cfg, _ = small_cfg(overrides)
    data = instantiate(cfg.dataset).load()
    torch.manual_seed(0)
    model = instantiate(cfg.model, input_shape=list(data.input_shape), num_classes=data.num_classes)
    loss, weighting, sampler = instantiate(cfg.loss), instantiate(cfg.weighting), instantiate(cfg.sampler)
    prepare(data.task, data.train.y, loss, weighting, sampler)
    trainer = TrainerConfig(**{**cfg.trainer, "epochs": 3, "eval_every": 1})
    return model, loss, weighting, sampler, data, trainer


def test_fit_is_deterministic_on_cpu():
    a = fit(*_parts(), seed=3).metrics
    b = fit(*_parts(), seed=3).metrics
    assert a["last/test/acc"] == b["last/test/acc"] and a["last/test/nll"] == b["last/test/nll"]


def test_fit_reports_every_metric_and_selection():
    result = fit(*_parts(), seed=0)
    for sel in ("last", "best", "oracle"):
        for split in ("val", "test"):
            for name in ("acc", "balanced_acc", "macro_f1", "worst_class_acc", "nll", "ece", "many_acc",
                         "medium_acc", "few_acc", "class_acc"):  # fmt: skip
                assert f"{sel}/{split}/{name}" in result.metrics
    assert len(result.history) == 3 and result.history[-1]["epoch"] == 2
    assert result.metrics["train_time_s"] > 0 and result.metrics["peak_mem_mb"] > 0
    assert result.metrics["oracle/test/acc"] >= result.metrics["last/test/acc"]


def test_nan_loss_raises_diverged():
    model, loss, weighting, sampler, data, trainer = _parts()
    trainer.lr = 1e30  # explodes
    with pytest.raises(Diverged) as info:
        fit(model, loss, weighting, sampler, data, trainer, seed=0)
    assert info.value.history and not math.isfinite(info.value.history[-1]["train/loss"])


def test_weighting_switch_is_visible_in_training():
    # DRW from epoch 0 must train differently from no weighting
    model, loss, _, sampler, data, trainer = _parts()
    w = build_weighting("drw", data.class_counts, start_epoch=0)
    a = fit(model, loss, w, sampler, data, trainer, seed=0).metrics["last/test/nll"]
    model, loss, weighting, sampler, data, trainer = _parts()
    b = fit(model, loss, weighting, sampler, data, trainer, seed=0).metrics["last/test/nll"]
    assert a != b


def test_evaluation_scores_ldam_on_its_logit_scale():
    # LDAM trains softmax(s * cos): NLL/ECE must be computed on s * logits, accuracy is unchanged
    from lossbench.metrics.functional import classification_metrics
    from lossbench.train.evaluate import predict

    model, _, weighting, sampler, data, trainer = _parts(["loss=ldam"])
    loss = build_loss("ldam", data.class_counts, s=30.0)
    assert loss.logit_scale == 30.0
    metrics = fit(model, loss, weighting, sampler, data, trainer, seed=0).metrics
    logits = predict(model, data.test.x, 256, torch.device("cpu"))
    expected = classification_metrics(logits * 30.0, data.test.y, data.class_counts)
    assert metrics["last/test/nll"] == pytest.approx(expected["nll"])
    assert metrics["last/test/ece"] == pytest.approx(expected["ece"])
    assert metrics["last/test/acc"] == pytest.approx(
        classification_metrics(logits, data.test.y, data.class_counts)["acc"]
    )


def test_eval_batch_defaults_by_device():
    """Null `eval_batch_size`: 256 on CPU (a stacked group's base), 1024 on CUDA; a set value wins."""
    cfg = TrainerConfig()
    assert cfg.eval_batch_size is None
    assert (
        cfg.eval_batch(torch.device("cpu")),
        cfg.eval_batch(torch.device("cuda:1")),
        cfg.eval_batch("cuda"),
    ) == (256, 1024, 1024)
    assert TrainerConfig(eval_batch_size=64).eval_batch(torch.device("cuda")) == 64


def test_the_level_2_cache_is_read_from_sysfs(tmp_path):
    from lossbench.train.fast import l2_cache_bytes

    for index, (level, kind, size) in enumerate([("1", "Data", "48K"), ("1", "Instruction", "32K"),
                                                 ("2", "Unified", "1024K"), ("3", "Unified", "32768K")]):  # fmt: skip
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (folder / name).write_text(value + "\n")
    assert l2_cache_bytes.__wrapped__(str(tmp_path)) == 2**20
    (tmp_path / "index2" / "size").write_text("2M\n")
    assert l2_cache_bytes.__wrapped__(str(tmp_path)) == 2**21
    assert l2_cache_bytes.__wrapped__(str(tmp_path / "missing")) is None


@pytest.mark.parametrize(
    ("l2", "chunks"), [(2**21, (128, 512, 1024)), (2**20, (64, 256, 1024)), (None, (128, 512, 1024))]
)
def test_cpu_evaluation_sizes_its_chunks_per_model(monkeypatch, l2, chunks):
    """Null `eval_batch_size` on CPU: the largest activation fills twice the threads' L2 (unknown: 8 MB); any chunk scores alike."""
    from lossbench.models.lenet import LeNet
    from lossbench.models.mlp import MLP
    from lossbench.models.resnet_cifar import ResNetCifar
    from lossbench.train import fast
    from lossbench.train.evaluate import Evaluator, predict
    from lossbench.train.fast import cpu_eval_batch

    monkeypatch.setattr(fast, "l2_cache_bytes", lambda: l2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    models = [
        (ResNetCifar([3, 32, 32], 10), (3, 32, 32)),
        (LeNet((1, 28, 28), 10), (1, 28, 28)),
        (MLP([64], 10), (64,)),
    ]
    for (model, shape), chunk in zip(models, chunks, strict=True):
        x = torch.randn(40, *shape)
        with torch.inference_mode():
            assert cpu_eval_batch(model.eval(), x[:4]) == chunk, type(model).__name__
        torch.testing.assert_close(
            predict(model, x, None, torch.device("cpu")), predict(model, x, 7, torch.device("cpu"))
        )
    _, _, _, _, data, trainer = _parts([])
    assert Evaluator.of(data, trainer, torch.device("cpu")).batch_size is None  # sized per model
    assert (
        Evaluator.of(data, dataclasses.replace(trainer, eval_batch_size=64), torch.device("cpu")).batch_size
        == 64
    )
