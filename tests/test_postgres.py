"""The store against a real PostgreSQL server, started on loopback for these tests.

The server binaries come from the `postgresql` Debian package (`make postgres` installs it as root);
without them, or without psycopg, the tests skip and say why.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from lossbench import run
from lossbench.store.db import Store, history, runs
from tests.conftest import small_cfg
from tests.test_resume import stable
from tests.test_store_concurrency import claim_from_processes


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb") or ""]
    return Path(found[-1]).parent if found[-1] else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """A throwaway PostgreSQL server on 127.0.0.1: yields a function giving the URL of a fresh database."""
    bindir = _bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl): `make postgres` installs them as root")
    pytest.importorskip("psycopg", reason="psycopg missing: pip install 'lossbench[postgres]'")
    root = Path(tempfile.mkdtemp(prefix="lossbench-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        user = "postgres" if _user_exists("postgres") else "nobody"
        shutil.chown(root, user)
        as_user = ["runuser", "-u", user, "--"]
    data, port = root / "data", _free_port()

    def pg(*cmd):
        return subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120, check=True)

    pg(str(bindir / "initdb"), "-D", str(data), "-U", "lossbench", "--auth=trust", "-E", "UTF8")
    pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
       f"-p {port} -k {root} -h 127.0.0.1 -c fsync=off", "start")  # fmt: skip
    admin = sa.create_engine(f"postgresql+psycopg://lossbench@127.0.0.1:{port}/postgres",
                             isolation_level="AUTOCOMMIT")  # fmt: skip

    def fresh_database() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://lossbench@127.0.0.1:{port}/{name}"

    try:
        yield fresh_database
    finally:
        admin.dispose()
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


GRID = [["loss=ce", "seed=0"], ["loss=focal", "weighting=drw", "seed=1"], ["trainer.lr=1e30"],
        ["trainer.select_metric=val/nope"]]  # fmt: skip


def _records(url):
    with Store(url).engine.connect() as conn:
        rows = conn.execute(sa.select(runs).order_by(runs.c.run_id)).mappings().all()
        hist = conn.execute(sa.select(history).order_by(history.c.run_id, history.c.epoch)).all()
    keep = ("run_id", "variant", "status", "dataset", "loss", "weighting", "seed", "labels", "data_meta")
    out = [{**{k: r[k] for k in keep}, "metrics": stable(r["metrics"] or {}),
            "config": {k: v for k, v in r["config"].items() if k != "store"},  # differs by its URL only
            "error": (r["error"] or "").strip().splitlines()[-1:]} for r in rows]  # fmt: skip
    return out, [tuple(h) for h in hist]


def test_the_same_grid_gives_the_same_records_on_postgresql_as_on_sqlite(server, tmp_path):
    """Acceptance: statuses, metrics, history and provenance agree between the two back ends."""
    urls = [f"sqlite:///{tmp_path}/s.db", server()]
    for url in urls:
        assert [run.run_cell(*small_cfg(cell, store_url=url)) for cell in GRID] == [
            "completed", "completed", "diverged", "failed"]  # fmt: skip
        assert run.run_cell(*small_cfg(GRID[0], store_url=url)) == "skipped"
    sqlite_records, pg_records = _records(urls[0]), _records(urls[1])
    assert [r["status"] for r in pg_records[0]] and len(pg_records[1]) > 0
    assert pg_records == sqlite_records
    assert Store(urls[1]).counts() == {
        "running": 0,
        "completed": 2,
        "failed": 1,
        "diverged": 1,
        "interrupted": 0,
    }


def test_concurrent_processes_claim_a_run_exactly_once_on_postgresql(server):
    url = server()
    Store(url)  # create the schema once, as the first cell of a grid would
    assert claim_from_processes(url, 4) == [False, False, False, True]
    with Store(url).engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count(), sa.func.max(runs.c.attempt))).one() == (1, 1)
