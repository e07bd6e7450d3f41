"""Checkpoints, resume after a kill, and faults recorded as outcomes."""

import os
import subprocess
import sys
import textwrap

import pytest
import sqlalchemy as sa
import torch

from lossbench import run
from lossbench.store.db import Store, runs
from lossbench.train.checkpoint import FILENAME, load_checkpoint
from lossbench.train.config import TrainerConfig
from lossbench.train.loop import fit
from tests.conftest import small_cfg
from tests.test_trainer import _parts

VOLATILE = ("train_time_s", "peak_mem_mb")  # wall clock and process memory differ run to run


def stable(metrics):
    return {k: v for k, v in metrics.items() if k not in VOLATILE}


class Killed(BaseException):
    """Stands for the process dying: nothing in the loop or run_cell catches it."""


def _parts_with(epochs, every, overrides=("weighting=drw", "weighting.start_epoch=2", "loss=ldam")):
    model, loss, weighting, sampler, data, trainer = _parts(list(overrides))
    cfg = TrainerConfig(**{**trainer.__dict__, "epochs": epochs, "checkpoint_every": every, "eval_every": 1})
    return model, loss, weighting, sampler, data, cfg


def test_fit_resumed_from_a_checkpoint_ends_exactly_like_an_uninterrupted_fit(tmp_path):
    whole = fit(*_parts_with(5, 2), seed=3, checkpoint_dir=tmp_path / "a")

    def die_after_epoch_2(row):
        if row["epoch"] == 2:
            raise Killed

    with pytest.raises(Killed):
        fit(*_parts_with(5, 2), seed=3, checkpoint_dir=tmp_path / "b", on_epoch_end=die_after_epoch_2)
    saved = load_checkpoint(tmp_path / "b")  # weights_only=True: plain state dicts only
    assert saved["epoch"] == 1 and len(saved["history"]) == 2
    torch.manual_seed(123)  # a different process would start from a different global RNG state
    resumed = fit(*_parts_with(5, 2), seed=3, checkpoint_dir=tmp_path / "b")
    assert resumed.resumed_from == 1 and whole.resumed_from is None
    assert stable(resumed.metrics) == stable(whole.metrics)
    assert resumed.history == whole.history


def test_checkpoint_writes_are_atomic_and_off_by_default(tmp_path):
    fit(*_parts_with(3, 0), seed=0, checkpoint_dir=tmp_path)
    assert not any(tmp_path.iterdir())
    fit(*_parts_with(3, 1), seed=0, checkpoint_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [FILENAME]  # no temporary file left behind
    with pytest.raises(ValueError, match="checkpoint_every"):
        TrainerConfig(checkpoint_every=-1)


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from lossbench import run
    from tests.conftest import small_cfg

    def fit(*args, on_epoch_end, **kw):
        def hook(row):
            on_epoch_end(row)
            if row["epoch"] == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)
        return real_fit(*args, on_epoch_end=hook, **kw)

    real_fit, run.fit = run.fit, fit
    cfg, choices = small_cfg(sys.argv[3:], store_url=sys.argv[1])
    run.run_cell(cfg, choices)
""")
RESUME = ["trainer.epochs=5", "trainer.eval_every=1", "trainer.checkpoint_every=1", "weighting=drw",
          "weighting.start_epoch=2"]  # fmt: skip


def test_a_run_killed_midway_resumes_from_its_checkpoint_with_the_same_metrics(tmp_path):
    """Acceptance: SIGKILL after epoch 2, rerun: same metrics as an uninterrupted run (CPU, same seed)."""
    killed_url, whole_url = f"sqlite:///{tmp_path}/killed.db", f"sqlite:///{tmp_path}/whole.db"
    over = [*RESUME, f"paths.results_dir={tmp_path}/killed"]
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, killed_url, "2", *over], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    store = Store(killed_url)
    assert store.counts()["running"] == 1 and len(store.stale_runs()) == 1
    assert list((tmp_path / "killed" / "checkpoints").glob(f"*/{FILENAME}"))
    assert run.run_cell(*small_cfg(over, store_url=killed_url)) == "completed"
    assert (
        run.run_cell(*small_cfg([*RESUME, f"paths.results_dir={tmp_path}/whole"], store_url=whole_url))
        == "completed"
    )
    rows = []
    for url in (killed_url, whole_url):
        with Store(url).engine.connect() as conn:
            rows.append(conn.execute(sa.select(runs)).mappings().one())
    assert rows[0]["environment"]["resumed_from_epoch"] == 2 and rows[0]["attempt"] == 2
    assert "resumed_from_epoch" not in rows[1]["environment"]
    assert rows[0]["run_id"] == rows[1]["run_id"]
    assert stable(rows[0]["metrics"]) == stable(rows[1]["metrics"])
    assert Store(killed_url).history_of(rows[0]["run_id"]) == Store(whole_url).history_of(rows[0]["run_id"])
    assert not list((tmp_path / "killed" / "checkpoints").glob("*/*"))  # removed once completed


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
                                   MemoryError()])  # fmt: skip
def test_out_of_memory_is_a_failed_run_with_the_reason(error, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/s.db"

    def oom(*a, **k):
        raise error

    monkeypatch.setattr(run, "fit", oom)
    assert run.run_cell(*small_cfg([], store_url=url)) == "failed"
    with Store(url).engine.connect() as conn:
        message = conn.execute(sa.select(runs.c.error)).scalar()
    assert "Traceback" in message and message.strip().splitlines()[-1].startswith("out of memory")
