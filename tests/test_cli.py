"""The command line as a user meets it (real subprocesses)."""

import json

from tests.conftest import lossbench

GRID = ["dataset=synthetic", "dataset.n_max=40", "dataset.test_per_class=20", "trainer=smoke"]


def test_multirun_grid_then_rerun_skips_then_report(tmp_path):
    url = f"sqlite:///{tmp_path}/x.db"
    args = ["run", "-m", *GRID, "loss=ce,focal", "weighting=none,drw", "seed=0,1", f"store.url={url}"]
    first = lossbench(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "8 completed, 0 skipped" in first.stderr
    # only execution settings changed: the same runs, all skipped
    execution = [
        "trainer.device=cpu",
        "trainer.progress=false",
        "trainer.eval_batch_size=256",
        "trainer.checkpoint_every=1",
    ]
    second = lossbench(*args, *execution, cwd=tmp_path)
    assert second.returncode == 0 and "0 completed, 8 skipped" in second.stderr, second.stderr
    csv = lossbench("report", "--store", url, "--format", "csv", cwd=tmp_path)
    assert csv.returncode == 0 and len(csv.stdout.strip().splitlines()) == 1 + 4
    md = lossbench(
        "report", "--store", url, "--metric", "test/balanced_acc", "--select", "best", cwd=tmp_path
    )
    assert "best validation" in md.stdout and "(2)" in md.stdout
    status = json.loads(lossbench("status", "--store", url, "--format", "json").stdout)
    assert status["completed"] == 8 and status["failed"] == 0


def one_line_error(result, *needles):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for n in needles:
        assert n in lines[0]


def test_unknown_option_lists_valid_ones(tmp_path):
    one_line_error(lossbench("run", "loss=nope", cwd=tmp_path), "nope", "valid options", "focal")


def test_invalid_parameter_fails_before_training(tmp_path):
    one_line_error(lossbench("run", "loss=focal", "loss.gamma=-1", cwd=tmp_path), "gamma", "-1")
    one_line_error(lossbench("run", "dataset.imbalance_ratio=0.5", cwd=tmp_path), "imbalance_ratio")
    one_line_error(lossbench("run", "weighting=effective_number", "weighting.beta=1.5", cwd=tmp_path), "beta")
    one_line_error(lossbench("run", "trainer.epohcs=3", cwd=tmp_path), "epohcs")
    one_line_error(lossbench("run", "-m", "loss=ce,nope", cwd=tmp_path), "nope")
    assert not (tmp_path / "results" / "lossbench.db").exists()


def test_multirun_goes_on_after_divergence_and_failure_sets_exit_code(tmp_path):
    url = f"sqlite:///{tmp_path}/x.db"
    res = lossbench("run", "-m", *GRID, "trainer.lr=1e30,0.05", f"store.url={url}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    status = json.loads(lossbench("status", "--store", url, "--format", "json").stdout)
    assert status["diverged"] == 1 and status["completed"] == 1


def test_help_tells_the_truth():
    top = lossbench("--help")
    assert top.returncode == 0 and all(c in top.stdout for c in ("run", "report", "list", "status"))
    run_help = lossbench("run", "--help")
    assert run_help.returncode == 0 and "loss: " in run_help.stdout and "lossbench list" in run_help.stdout
    groups = [
        ln.split(":")[0] for ln in run_help.stdout.split("== Config groups")[1].split("==")[0].splitlines()
    ]
    assert (
        not {"paths", "loss_model", "hydra"} & set(groups)
        and "base" not in run_help.stdout.split("== Composed")[0]
    )
    status_help = lossbench("status", "--help")
    assert "read-only" in status_help.stdout and "quick_check" in status_help.stdout
    listing = lossbench("list", "loss")
    assert "focal" in listing.stdout and "Lin et al" in listing.stdout
