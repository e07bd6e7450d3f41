"""Every paper preset runs end to end (one optimizer step per cell) and every bundled target finds its runs.

The presets' grids are expanded from their own `hydra.sweeper.params` and each cell runs through
`run.run_cell` on CIFAR / MNIST / Fashion-MNIST files written here in the on-disk formats (random pixels,
a few hundred images per class: enough for the ratio-200 tail to keep one image). Where a grid is larger
than its bundled targets need, `PASSES` restricts it; every preset still runs, and every target row must
be matched by at least one completed run (n > 0) of the preset that names it.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from omegaconf import DictConfig, open_dict

from lossbench import run
from lossbench.config import CONFIG_DIR, compose, compose_with_hydra, options
from lossbench.report.load import load_runs
from lossbench.report.targets import BUNDLED, compare, config_keys, read_targets
from tests.conftest import lossbench
from tests.test_image_datasets import write_cifar, write_idx

PRESETS = [p for p in options("experiment")]
# what a preset's smoke run may skip (values replace the preset's own sweep values); a list = several passes
PASSES: dict[str, list[dict[str, str]]] = {
    "demo": [{"dataset": "digits", "seed": "0"}],
    "imbalanced_regression": [{"seed": "0"}],
    "yang_imbalanced_regression": [{"seed": "0"}],  # every table x every row once
    # ldam_drw: the whole grid (every cell is a target row of Table 2)
    "class_balanced": [{"dataset.imbalance_ratio": "10"},  # every row once, then the target rows at 100 and 50
                       {"dataset.imbalance_ratio": "100,50", "recipe": "erm,sigmoid_ce,sigmoid_focal"},
                       {"dataset": "cifar10", "dataset.imbalance_ratio": "100", "recipe": "cb_sigmoid_focal"}],
    "balanced_softmax": [{"dataset.imbalance_ratio": "200"}],
    **{name: [{"dataset.noise.rate": "0.4"}] for name in PRESETS if name.startswith("label_noise_") and "cpu" not in name},
    **{name: [{"seed": "0"}] for name in PRESETS if name.endswith("_cpu")},
}  # fmt: skip
# the preset whose runs each bundled targets file is joined with
TARGETS_OF = {"ldam_drw": "ldam_drw", "class_balanced": "class_balanced", "logit_adjustment": "logit_adjustment",
              "balanced_softmax": "balanced_softmax", "bag_of_tricks": "bag_of_tricks",
              "weight_balancing": "weight_balancing"}  # fmt: skip
SMOKE = ["trainer=smoke", "trainer.epochs=1", "trainer.max_steps=1", "trainer.batch_size=16", "trainer.eval_every=1",
         "model.blocks_per_stage=1"]  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    """One-step cells are tiny: intra-op threads only contend (and are slower on a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def composed(overrides: list[str]) -> tuple[DictConfig, dict]:
    """The run config of `overrides` and its group choices, from one Hydra composition."""
    cfg = compose_with_hydra(overrides)
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, choices


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """CIFAR-10/100 pickles (200 train images per class, the least a ratio-200 tail needs) and IDX files."""
    root = tmp_path_factory.mktemp("data")
    write_cifar(root, per_class_train=200, per_class_test=2)
    write_cifar(root, per_class_train=200, per_class_test=1, num_classes=100)
    rng = np.random.default_rng(0)
    for name, per_class in (("MNIST", 12), ("FashionMNIST", 160)):  # Fashion twins: 50 val + n_max 100
        for prefix, n in (("train", per_class), ("t10k", 2)):
            y = rng.permutation(np.repeat(np.arange(10, dtype=np.uint8), n))
            write_idx(root / name / "raw", rng.integers(0, 256, (len(y), 28, 28), dtype=np.uint8), y, prefix)
    return root


def cells(name: str) -> list[list[str]]:
    """The overrides of every cell of `name`'s grid, after `PASSES`."""
    params = {k: str(v) for k, v in compose_with_hydra([f"experiment={name}"]).hydra.sweeper.params.items()}
    out = []
    for restrict in PASSES.get(name, [{}]):
        grid = {**params, **restrict}
        keys = list(grid)
        for values in itertools.product(*(grid[k].split(",") for k in keys)):
            out.append([f"{k}={v.strip()}" for k, v in zip(keys, values, strict=True)])
    return out


def smoke_overrides(name: str, url: str, root: Path) -> list[str]:
    cfg = compose([f"experiment={name}"])
    extra = [o for o in SMOKE if not o.startswith("model.blocks") or "blocks_per_stage" in cfg.model]
    if "verify_md5" in cfg.dataset:
        extra.append("dataset.verify_md5=false")  # the files written here are not the official ones
    if cfg.dataset.get("n_max") is not None:
        extra += ["dataset.n_max=100", "dataset.system_dir="]  # the written files, never the system copy
    if cfg.model._target_.endswith("ResNet18"):
        extra += ["model=resnet32", "model.blocks_per_stage=1"]  # same recipe, a network that runs in seconds
    return [*extra, f"paths.data_dir={root}", f"store.url={url}"]


@pytest.mark.parametrize("name", PRESETS)
def test_preset_smoke_cells_complete_and_targets_find_their_runs(name, data_root, tmp_path):
    url = f"sqlite:///{tmp_path}/{name}.db"
    common = smoke_overrides(name, url, data_root)
    grid = cells(name)
    for cell in grid:
        assert run.run_cell(*composed([f"experiment={name}", *cell, *common])) == "completed", cell
    for stem, preset in TARGETS_OF.items():
        if preset != name:
            continue
        targets = read_targets(stem)
        runs = load_runs(url, config_keys=config_keys(targets))
        table = compare(runs, targets)
        missing = table[table["n"] == 0]
        assert missing.empty, f"{stem}: rows without runs:\n{missing[['method', 'setting', 'note']]}"


def test_every_bundled_targets_file_belongs_to_a_preset_and_says_where_it_was_checked():
    stems = sorted(p.stem for p in BUNDLED.glob("*.yaml"))
    assert stems == sorted(TARGETS_OF) and set(TARGETS_OF.values()) <= set(PRESETS)
    for stem in stems:
        doc = yaml.safe_load((BUNDLED / f"{stem}.yaml").read_text())
        assert doc.get("source"), stem
        assert all(t.checked in ("paper", "secondary") for t in read_targets(stem)), stem


def test_every_preset_names_its_protocol_and_is_a_multirun():
    for name in PRESETS:
        text = (CONFIG_DIR / "experiment" / f"{name}.yaml").read_text()
        assert text.startswith("# @package _global_"), name
        cfg = compose_with_hydra([f"experiment={name}"])
        assert cfg.hydra.mode.name == "MULTIRUN" and "seed" in cfg.hydra.sweeper.params, name


def test_cli_multirun_and_report_with_targets(data_root, tmp_path):
    """The acceptance commands: `lossbench run -m experiment=... trainer=smoke`, then the targets report."""
    url = f"sqlite:///{tmp_path}/la.db"
    done = lossbench("run", "-m", "experiment=logit_adjustment", "dataset=cifar10",
                     *smoke_overrides("logit_adjustment", url, data_root),
                     f"hydra.sweep.dir={tmp_path}/multirun")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = lossbench("report", "--store", url, "--targets", "logit_adjustment", "--select", "last")
    assert report.returncode == 0, report.stderr
    assert "Post-hoc LA" in report.stdout and "0.7732" in report.stdout  # ours beside the published value
    assert (
        "no run has dataset=cifar100 (recorded: cifar10)" in report.stdout
    )  # rows this run left out say why


def test_unmatched_target_says_which_recorded_value_it_missed(data_root, tmp_path):
    """The old bug: targets keyed on `dataset: cifar10_lt`, a label no run records; the table now says so."""
    url = f"sqlite:///{tmp_path}/one.db"
    overrides = ["experiment=logit_adjustment", "dataset=cifar10", "recipe=erm", "seed=0",
                 *smoke_overrides("logit_adjustment", url, data_root)]  # fmt: skip
    assert run.run_cell(*composed(overrides)) == "completed"
    (tmp_path / "t.yaml").write_text(
        "metric: test/acc\nselection: last\nchecked: paper\nsource: test\n"
        "targets:\n  - {name: ERM, method: {loss: ce}, setting: {dataset: cifar10_lt}, value: 70.0}\n"
    )
    table = compare(load_runs(url), read_targets(tmp_path / "t.yaml"))
    assert table.loc[0, "n"] == 0 and "dataset=cifar10_lt (recorded: cifar10)" in table.loc[0, "note"]
