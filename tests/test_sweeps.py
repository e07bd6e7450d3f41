"""Whole grids through the real command line: killed and re-invoked, and on the joblib/submitit launchers."""

import json
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import lossbench

TINY = ["dataset=synthetic", "dataset.n_max=40", "dataset.test_per_class=20", "trainer=smoke"]


def completed(path: Path) -> int:
    try:
        with sqlite3.connect(path, timeout=5) as conn:
            return conn.execute("select count(*) from runs where status = 'completed'").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def test_a_grid_killed_at_random_moments_finishes_exactly_once(tmp_path):
    """Acceptance: 12 cells, SIGKILLed at seeded random moments, re-invoked until done."""
    db = tmp_path / "grid.db"
    args = ["run", "-m", *TINY, "loss=ce,focal,balanced_softmax", "weighting=none,drw", "seed=0,1",
            "trainer.epochs=3", "trainer.checkpoint_every=1", f"paths.results_dir={tmp_path}",
            f"store.url=sqlite:///{db}"]  # fmt: skip
    exe = Path(sys.executable).with_name("lossbench")
    rng, kills = random.Random(4), 0
    for invocation in range(8):
        with open(tmp_path / f"log{invocation}.txt", "w") as log:
            proc = subprocess.Popen([str(exe), *args], cwd=tmp_path, stdout=log, stderr=log)
            if invocation < 2:  # kill the first invocations once they have made some progress
                target = completed(db) + rng.randint(1, 3)
                while proc.poll() is None and completed(db) < target:
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, 0.3))
                proc.kill()
            rc = proc.wait(timeout=600)
        kills += rc == -9
        if rc == 0:
            break
    assert rc == 0 and kills >= 1, (tmp_path / f"log{invocation}.txt").read_text()
    with sqlite3.connect(db) as conn:
        assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
        assert conn.execute("select status, count(*), count(distinct run_id) from runs group by status").fetchall() == [
            ("completed", 12, 12)]  # fmt: skip
        assert conn.execute(
            "select count(*), count(distinct run_id || '/' || epoch) from history"
        ).fetchone() == (36, 36)
    assert not list((tmp_path / "checkpoints").glob("*/*"))
    status = json.loads(lossbench("status", "--store", f"sqlite:///{db}", "--format", "json").stdout)
    assert status["completed"] == 12 and status["running"] == status["stale"] == 0


def test_eight_joblib_workers_record_every_run_once_and_failures_set_the_exit_code(tmp_path):
    """Acceptance: 8 joblib workers writing one SQLite store; a failed cell makes the grid exit 1."""
    db = tmp_path / "j.db"
    res = lossbench("run", "-m", "sweep=local", "hydra.launcher.n_jobs=8", *TINY, "loss=ce,focal", "seed=0,1,2,3",
                    "trainer.select_metric=val/acc,val/nope", f"store.url=sqlite:///{db}", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert "8 completed" in res.stderr and "8 of 16 runs failed" in res.stderr
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select status, count(*), count(distinct run_id), count(distinct owner_pid) from runs "
                            "group by status order by status").fetchall()  # fmt: skip
        assert conn.execute("pragma integrity_check").fetchone() == ("ok",)
    assert [r[:3] for r in rows] == [("completed", 8, 8), ("failed", 8, 8)]


def test_submitit_local_launcher_runs_the_grid_and_reports_failures(tmp_path):
    db = tmp_path / "s.db"
    res = lossbench("run", "-m", "sweep=submitit_local", *TINY, "trainer.select_metric=val/acc,val/nope",
                    f"store.url=sqlite:///{db}", f"paths.results_dir={tmp_path}", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert "1 completed" in res.stderr and "1 of 2 runs failed" in res.stderr
    status = json.loads(lossbench("status", "--store", f"sqlite:///{db}", "--format", "json").stdout)
    assert status["completed"] == 1 and status["failed"] == 1 and "nope" in status["problems"][0]["error"]


def test_the_default_launcher_reuses_the_preflight_configs_which_equal_hydras_own(tmp_path, monkeypatch):
    """`sweep=inprocess`: every cell's config comes from the preflight, equal to what Hydra composes.

    Hydra's own `load_sweep_config` composes each cell beside it (user Hydra overrides, `-m` adding
    `hydra.mode=MULTIRUN`). The preflight composes one cell per grid cell up to its seed and reseeds
    copies for the others; the grid's records and job directories are those of Hydra's basic launcher.
    """
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from lossbench import cli, config, run, sweep

    compared = []

    def take_and_compare(master, overrides):
        cfg = take(master, overrides)
        assert cfg is not None, overrides
        hydra_own = GlobalHydra.instance().config_loader().load_sweep_config(master, list(overrides))
        assert OmegaConf.to_yaml(cfg) == OmegaConf.to_yaml(hydra_own)
        compared.append(tuple(overrides))
        return cfg

    take = sweep.take_composed
    monkeypatch.setattr(sweep, "take_composed", take_and_compare)
    composed = []  # cells Hydra composed in the preflight: one per cell up to its seed
    compose_with_hydra = config.compose_with_hydra

    def counting(overrides=(), then=()):
        composed.extend(o for o in overrides if o.startswith("loss="))
        return compose_with_hydra(overrides, then)

    monkeypatch.setattr(config, "compose_with_hydra", counting)
    monkeypatch.setattr(run, "SESSION", run.Session(data=run.SESSION.data))
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "r.db"
    cli.main(["run", "-m", *TINY, "loss=ce,focal", "seed=0,1", "hydra.job_logging.root.level=WARN",
              f"paths.results_dir={tmp_path}", f"store.url=sqlite:///{db}"])  # fmt: skip
    assert len(compared) == 4 and sweep.PREFLIGHT.reused == 4 and not sweep.PREFLIGHT.configs
    assert composed == ["loss=ce", "loss=focal"]  # seed=1 of each: seed=0's config, reseeded
    with sqlite3.connect(db) as conn:
        assert conn.execute("select status, count(*) from runs group by status").fetchall() == [
            ("completed", 4)
        ]
    jobs = sorted((tmp_path / "hydra" / "multiruns").glob("*/*/*/.hydra/overrides.yaml"))
    assert len(jobs) == 4 and "loss=focal" in jobs[-1].read_text()
