"""The store under crashes and concurrency: owners, take-over, atomic claims, retries, migration."""

import json
import multiprocessing as mp
import sqlite3
import subprocess
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from lossbench import cli
from lossbench.store import db
from lossbench.store.db import ClaimLost, Store, runs
from lossbench.store.record import RunRecord, utcnow


def record(run_id="r1", seed=0):
    return RunRecord(run_id=run_id, variant="v", labels={"loss": "ce", "dataset": "synthetic"}, seed=seed,
                     config={"seed": seed})  # fmt: skip


def dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def set_owner(store, run_id, **values):
    with store.engine.begin() as conn:
        conn.execute(runs.update().where(runs.c.run_id == run_id).values(**values))
    db._ACTIVE.pop(run_id, None)  # this process no longer runs it


@pytest.mark.parametrize("when", ["after the commit", "before the commit"])
def test_a_ctrl_c_inside_a_claim_leaves_no_run_running(tmp_path, monkeypatch, when):
    """Ctrl-C between a claim's commit and its return is still released; one before the commit writes nothing."""
    store = Store(f"sqlite:///{tmp_path}/s.db")
    real = store._transact

    def interrupted(work):
        if when == "after the commit":
            real(work)
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "_transact", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.claim(record())
    monkeypatch.undo()
    store.release_claims("interrupted", "interrupted (Ctrl-C)")
    with store.engine.connect() as conn:
        statuses = [s for (s,) in conn.execute(sa.select(runs.c.status))]
    assert statuses == (["interrupted"] if when == "after the commit" else [])
    assert store.claim(record())  # the rerun takes it


def test_a_finish_writes_only_the_row_this_process_claimed(tmp_path):
    """A row with this attempt number but another owner (claimed elsewhere after a rolled-back claim) is not ours."""
    store = Store(f"sqlite:///{tmp_path}/s.db")
    assert store.claim(record())
    with store.engine.begin() as conn:
        conn.execute(runs.update().where(runs.c.run_id == "r1").values(owner_pid=dead_pid()))
    with pytest.raises(ClaimLost):
        store.finish("r1", "completed", metrics={"acc": 1.0})


def test_running_run_is_skipped_while_its_owner_lives_and_taken_over_once_gone(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    store = Store(url, stale_after_s=60)
    assert store.claim(record())
    assert not Store(url).claim(record())  # this very process runs it
    assert not store.claim(record(), force=True)  # force re-runs completed runs, never live ones
    set_owner(store, "r1", owner_pid=dead_pid())  # crashed on this host
    assert store.stale_runs()[0]["run_id"] == "r1"
    assert store.claim(record())
    set_owner(store, "r1", owner_host="node-7", owner_pid=1, heartbeat_at=utcnow())  # other host, beating
    assert not store.claim(record()) and not store.stale_runs()
    set_owner(store, "r1", owner_host="node-7", heartbeat_at=utcnow() - timedelta(seconds=120))
    assert store.claim(record())
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(runs.c.status, runs.c.attempt, runs.c.owner_pid)).all()
    assert len(rows) == 1 and rows[0][0] == "running" and rows[0][1] == 3
    store.finish("r1", "completed", history_rows=[{"epoch": 0, "train/loss": 1.0}])
    assert store.counts()["completed"] == 1 and not store.stale_runs()


def test_a_run_taken_over_by_another_process_cannot_be_finished_by_the_old_one(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    other = subprocess.Popen(["sleep", "30"])  # the live process that took the runs over
    try:
        for rid in ("r1", "r2"):
            assert store.claim(record(rid))
            with store.engine.begin() as conn:
                conn.execute(runs.update().where(runs.c.run_id == rid).values(attempt=2, owner_pid=other.pid))
        with pytest.raises(ClaimLost):
            store.finish("r1", "completed", metrics={"x": 1.0})
        with pytest.raises(ClaimLost):
            store.heartbeat("r2", min_interval_s=0)
        assert store.status_of("r1") == store.status_of("r2") == "running"
        assert not store.claim(record("r1"))  # its live owner keeps it
    finally:
        other.kill()
        other.wait()


def _claim_in_process(url, barrier, results):
    ok = Store(url).claim(record())
    results.put(ok)
    barrier.wait(timeout=60)  # stay alive until every process has tried: a live owner keeps its claim


def claim_from_processes(url, n):
    """`n` fresh processes claim the same run at once; their claim results, sorted."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_claim_in_process, args=(url, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return sorted(outcomes)


def test_concurrent_processes_claim_a_run_exactly_once(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    assert claim_from_processes(url, 6) == [False] * 5 + [True]
    with sqlite3.connect(f"{tmp_path}/s.db") as conn:
        assert conn.execute("select count(*), max(attempt) from runs").fetchone() == (1, 1)


def test_a_locked_database_is_retried_with_backoff(tmp_path):
    path = tmp_path / "s.db"
    store = Store(f"sqlite:///{path}", timeout_s=0.01, retries=20)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock for a while
    threading.Timer(0.5, blocker.rollback).start()
    started = time.monotonic()
    assert store.claim(record())
    assert time.monotonic() - started > 0.3
    blocker.close()


def test_lock_errors_surface_once_retries_are_spent(tmp_path):
    path = tmp_path / "s.db"
    store = Store(f"sqlite:///{path}", timeout_s=0.01, retries=1)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(sa.exc.OperationalError, match="locked"):
        store.claim(record())
    blocker.rollback()


def test_a_schema_1_store_is_migrated_on_open(tmp_path):
    path = tmp_path / "old.db"
    v1 = sa.MetaData()
    new = {"owner_host", "owner_pid", "heartbeat_at", "attempt"}
    sa.Table("runs", v1, *[c._copy() for c in runs.columns if c.name not in new])
    sa.Table("store_meta", v1, *[c._copy() for c in db.store_meta.columns])
    engine = sa.create_engine(f"sqlite:///{path}")
    v1.create_all(engine)
    with engine.begin() as conn:
        conn.execute(v1.tables["store_meta"].insert().values(key="schema_version", value="1"))
        conn.execute(v1.tables["runs"].insert().values(run_id="old", status="completed", seed=0,
                                                       metrics={"last/test/acc": 0.5}))  # fmt: skip
    engine.dispose()
    store = Store(f"sqlite:///{path}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("select value from store_meta").scalar() == str(db.SCHEMA_VERSION)
        row = conn.execute(sa.select(runs).where(runs.c.run_id == "old")).mappings().one()
    assert row["metrics"] == {"last/test/acc": 0.5} and row["attempt"] is None
    assert not store.claim(record("old"))  # completed stays completed
    assert store.claim(record("new"))
    store.finish("new", "failed", error="x")
    assert store.counts() == {"running": 0, "completed": 1, "failed": 1, "diverged": 0, "interrupted": 0}
    assert Store(f"sqlite:///{path}").counts()["failed"] == 1  # reopening a current store changes nothing


def test_status_reports_counts_stale_runs_and_one_line_errors(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/s.db"
    store = Store(url)
    for rid in ("a", "b", "c"):
        store.claim(record(rid))
    store.finish("a", "completed")
    store.finish("b", "failed", error="Traceback (most recent call last):\n  ...\nRuntimeError: boom\n")
    set_owner(store, "c", owner_pid=dead_pid())
    cli.main(["status", "--store", url, "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert {k: out[k] for k in ("completed", "running", "failed", "diverged", "stale")} == {
        "completed": 1, "running": 1, "failed": 1, "diverged": 0, "stale": 1}  # fmt: skip
    assert out["problems"][0]["error"] == "RuntimeError: boom"
    assert out["stale_runs"][0]["run_id"] == "c"
    cli.main(["status", "--store", url])
    text = capsys.readouterr().out
    assert "completed: 1" in text and "RuntimeError: boom" in text and "lost their process" in text
