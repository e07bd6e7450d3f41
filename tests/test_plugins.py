"""Bring your own component: a user's project with its own options in every group, run beside the zoo."""

import csv
import io
import sys
import textwrap

import pytest

from lossbench import cli
from lossbench.config import compose, use_config_dirs
from lossbench.store.record import run_id_of
from tests.conftest import lossbench

MY_LOSS = '''
import torch.nn.functional as F

from lossbench.losses import Loss


class MyLoss(Loss):
    """Cross-entropy on logits / temperature: (N, C), (N,) -> (N,)."""

    def __init__(self, temperature: float = 2.0) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, logits, targets):
        return F.cross_entropy(logits / self.temperature, targets, reduction="none")
'''
MY_PARTS = '''
from lossbench.data.synthetic import Synthetic
from lossbench.models.mlp import MLP
from lossbench.samplers.instance import InstanceSampler
from lossbench.stage2 import Stage2
from lossbench.weighting.base import ClassWeighting


class MyWeighting(ClassWeighting):
    """Class weights n_c^-1/4."""

    def compute_weights(self, counts):
        return counts**-0.25


class MySampler(InstanceSampler):
    """Instance sampling, as a user subclass."""


class MyDataset(Synthetic):
    """A small Gaussian mixture."""


class MyModel(MLP):
    """An MLP, as a user subclass."""


class MyStage2(Stage2):
    """Leaves the trained model as it is."""

    def apply(self, model, data, trainer, seed, evaluator):
        return None
'''
YAMLS = {
    "loss/my_loss.yaml": "# My loss: CE on logits / temperature.\n_target_: my_loss.MyLoss\ntemperature: 2.0\n",
    "weighting/my_weighting.yaml": "# n_c^-1/4 class weights.\n_target_: my_parts.MyWeighting\n",
    "sampler/my_sampler.yaml": "# My sampler.\n_target_: my_parts.MySampler\n",
    "dataset/my_dataset.yaml": "# My data.\n_target_: my_parts.MyDataset\nnum_classes: 3\ndim: 4\nn_max: 30\n"
    "val_per_class: 5\ntest_per_class: 10\n",
    "model/my_model.yaml": "# My model.\n_target_: my_parts.MyModel\nhidden: [16]\n",
    "stage2/my_stage2.yaml": "# My stage 2.\n_target_: my_parts.MyStage2\n",
}
MINE = [
    "weighting=my_weighting",
    "sampler=my_sampler",
    "dataset=my_dataset",
    "model=my_model",
    "stage2=my_stage2",
]


def make_project(root, loss_source=MY_LOSS, yamls=None):
    """A user's project: `my_loss.py`, `my_parts.py` and `configs/<group>/<option>.yaml`."""
    (root / "my_loss.py").write_text(textwrap.dedent(loss_source))
    (root / "my_parts.py").write_text(MY_PARTS)
    for rel, text in {**YAMLS, **(yamls or {})}.items():
        (root / "configs" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "configs" / rel).write_text(text)
    return root / "configs"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The user's project as the working directory; config dirs and user modules reset afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("LOSSBENCH_CONFIG_PATH", raising=False)
    yield tmp_path
    use_config_dirs([])
    for name in ("my_loss", "my_parts"):
        sys.modules.pop(name, None)


def test_user_grid_runs_beside_the_zoo_and_reaches_the_report(tmp_path):
    make_project(tmp_path)
    grid = ["run", "-m", "--config-dir", "./configs", "loss=my_loss,ce", "seed=0,1", *MINE, "trainer=smoke"]
    res = lossbench(*grid, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "results" / "lossbench.db").is_file()  # the store is created where the user works
    rows = list(csv.DictReader(io.StringIO(lossbench("report", "--format", "csv", cwd=tmp_path).stdout)))
    assert {r["loss"] for r in rows} == {"my_loss", "ce"} and {r["weighting"] for r in rows} == {
        "my_weighting"
    }
    assert all(int(r["my_dataset_n"]) == 2 for r in rows), rows  # 2 seeds of each cell on the user's dataset
    listing = lossbench(
        "list", "loss", cwd=tmp_path, env={"LOSSBENCH_CONFIG_PATH": str(tmp_path / "configs")}
    )
    mine = next(line.split() for line in listing.stdout.splitlines() if "my_loss" in line)
    assert mine[:3] == ["my_loss", "[user:", f"{tmp_path / 'configs' / 'loss' / 'my_loss.yaml'}]"], mine
    assert "[user" not in next(
        line for line in listing.stdout.splitlines() if line.strip().startswith("focal")
    )


def test_every_user_option_passes_lossbench_check(project, capsys):
    make_project(project)
    names = [f"{spec.split('/')[0]}={spec.split('/')[1][:-5]}" for spec in YAMLS]
    cli.main(["check", "--config-dir", "configs", *names])
    out = capsys.readouterr().out
    assert out.count("(user: ") == len(YAMLS) and "FAIL" not in out


def test_builtin_run_ids_do_not_change_with_a_plugin_dir(project):
    cell = ["loss=focal", "weighting=drw", "dataset=synthetic", "seed=3"]
    before = run_id_of(compose(cell))
    use_config_dirs(["--config-dir", str(make_project(project))])
    assert compose(["loss=my_loss"]).loss._target_ == "my_loss.MyLoss"
    assert run_id_of(compose(cell)) == before


BROKEN = {
    "import error": (
        {"loss/my_loss.yaml": "_target_: nope_module.MyLoss\n"},
        MY_LOSS,
        "no module named 'nope_module'",
    ),
    "missing class": ({"loss/my_loss.yaml": "_target_: my_loss.MyLos\n"}, MY_LOSS, "has no 'MyLos'"),
    "wrong parameter": (
        {"loss/my_loss.yaml": "_target_: my_loss.MyLoss\ntemp: 1.0\n"},
        MY_LOSS,
        "unexpected keyword argument 'temp'",
    ),
    "wrong shape": (
        {},
        MY_LOSS.replace('reduction="none")', 'reduction="mean")'),
        "expected per-example losses (8,)",
    ),
    "wrong dtype": (
        {},
        MY_LOSS.replace('reduction="none")', 'reduction="none").double()'),
        "expected float32",
    ),
    "non-finite": ({}, MY_LOSS.replace('reduction="none")', 'reduction="none") / 0'), "non-finite losses"),
    "no gradient": ({}, MY_LOSS.replace('reduction="none")', 'reduction="none").detach()'), "no gradient"),
    "error inside the module": (
        {},
        "import not_installed_pkg\n" + MY_LOSS,
        "my_loss.py:1: No module named 'not_installed_pkg'",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_broken_plugin_fails_before_training_in_one_line(project, capsys, case):
    yamls, source, reason = BROKEN[case]
    make_project(project, source, yamls)
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "--config-dir", "configs", "loss=my_loss", "trainer=smoke"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and err.startswith("lossbench: loss 'my_loss'"), err
    assert reason in err and ("my_loss.yaml" in err or "my_loss.py" in err), err
    assert not (project / "results").exists()  # nothing trained, no store created


def test_user_option_may_not_shadow_a_builtin(project, capsys):
    make_project(project, yamls={"loss/ce.yaml": "_target_: my_loss.MyLoss\n"})
    with pytest.raises(SystemExit):
        cli.main(["list", "loss", "--config-dir", "configs"])
    assert "has the name of the built-in loss 'ce'; rename the file" in capsys.readouterr().err


def test_missing_config_dir_is_one_line(project, capsys):
    with pytest.raises(SystemExit):
        cli.main(["check", "loss=ce", "--config-dir", "nowhere"])
    assert capsys.readouterr().err.startswith("lossbench: config directory 'nowhere' does not exist")
