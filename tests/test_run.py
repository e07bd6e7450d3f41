import pytest
import sqlalchemy as sa

from lossbench import run
from lossbench.report.load import load_runs
from lossbench.report.tables import render_table, summarize
from lossbench.store.db import Store, runs
from tests.conftest import options_for, small_cfg


@pytest.mark.parametrize("loss", options_for("loss"))
def test_one_tiny_run_per_loss_writes_a_record(loss, tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    cfg, choices = small_cfg([f"loss={loss}", "weighting=drw"], store_url=url)
    assert run.run_cell(cfg, choices) == "completed"
    frame = load_runs(url)
    assert len(frame) == 1 and frame.loc[0, "loss"] == loss and frame.loc[0, "weighting"] == "drw"
    assert 0 <= frame.loc[0, "last/test/acc"] <= 1
    table = render_table(summarize(frame, "last/test/acc"), "test/acc")
    assert loss in table


def test_record_holds_provenance(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    cfg, choices = small_cfg(["seed=5"], store_url=url)
    run.run_cell(cfg, choices)
    store = Store(url)
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(runs)).mappings().one()
    assert row["status"] == "completed" and row["seed"] == 5
    assert row["data_meta"]["class_counts"] == [40, 22, 12, 7, 4]  # longtail_counts(40, 5, 10, "exp")
    assert len(row["data_meta"]["index_hash"]) == 16
    assert row["config"]["loss"]["_target_"].endswith("CrossEntropyLoss")
    assert "torch" in row["environment"]["packages"] and row["environment"]["device"] == "cpu"
    assert "git_sha" in row["environment"] and "git_dirty" in row["environment"]
    assert row["started_at"] is not None and row["finished_at"] is not None and row["duration_s"] > 0
    assert len(store.history_of(row["run_id"])) == 2
    assert row["metrics"]["last/test/class_acc"] and len(row["metrics"]["last/test/class_acc"]) == 5


def test_completed_run_is_skipped_unless_forced(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    cfg, choices = small_cfg([], store_url=url)
    assert run.run_cell(cfg, choices) == "completed"
    assert run.run_cell(cfg, choices) == "skipped"
    cfg.force = True
    assert run.run_cell(cfg, choices) == "completed"
    assert Store(url).counts()["completed"] == 1


def test_run_id_ignores_store_but_not_seed(tmp_path):
    from omegaconf import OmegaConf

    from lossbench.store.record import run_id_of

    a, _ = small_cfg([], store_url=f"sqlite:///{tmp_path}/a.db")
    b, _ = small_cfg([], store_url=f"sqlite:///{tmp_path}/b.db")
    c, _ = small_cfg(["seed=1"])
    ids = [run_id_of(OmegaConf.to_container(x, resolve=True)) for x in (a, b, c)]
    assert ids[0] == ids[1] != ids[2]


def test_diverging_run_is_recorded_and_the_next_goes_on(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    cfg, choices = small_cfg(["trainer.lr=1e30"], store_url=url)
    assert run.run_cell(cfg, choices) == "diverged"
    cfg, choices = small_cfg([], store_url=url)
    assert run.run_cell(cfg, choices) == "completed"
    counts = Store(url).counts()
    assert counts["diverged"] == 1 and counts["completed"] == 1


def test_failing_run_is_recorded_with_its_traceback(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/s.db"
    cfg, choices = small_cfg([], store_url=url)

    def boom(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(run, "fit", boom)
    assert run.run_cell(cfg, choices) == "failed"
    store = Store(url)
    with store.engine.connect() as conn:
        error = conn.execute(sa.select(runs.c.error)).scalar()
    assert "RuntimeError: boom" in error and "Traceback" in error
