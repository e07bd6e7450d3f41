"""The results store: SQLAlchemy Core over SQLite (default) or any URL such as PostgreSQL."""

from __future__ import annotations

import json
import math
import os
import random
import socket
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from lossbench.store.record import STATUSES, RunRecord, utcnow

SCHEMA_VERSION = 2  # 2: runs.owner_host, owner_pid, heartbeat_at, attempt (added to a v1 store on open)
HOST = socket.gethostname()
# Run ids this process has claimed and not finished yet, with the attempt number it holds.
_ACTIVE: dict[str, int] = {}
T = TypeVar("T")
metadata_obj = sa.MetaData()

runs = sa.Table(
    "runs",
    metadata_obj,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("variant", sa.String(64), index=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("experiment", sa.String(128)),
    sa.Column("dataset", sa.String(128), index=True),
    sa.Column("model", sa.String(128)),
    sa.Column("loss", sa.String(128)),
    sa.Column("weighting", sa.String(128)),
    sa.Column("sampler", sa.String(128)),
    sa.Column("trainer", sa.String(128)),
    sa.Column("seed", sa.Integer),
    sa.Column("labels", sa.JSON),
    sa.Column("config", sa.JSON),
    sa.Column("metrics", sa.JSON),
    sa.Column("data_meta", sa.JSON),
    sa.Column("environment", sa.JSON),
    sa.Column("error", sa.Text),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("duration_s", sa.Float),
    sa.Column("owner_host", sa.String(256)),  # who runs it (while `running`)
    sa.Column("owner_pid", sa.Integer),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True)),  # refreshed every epoch by the owner
    sa.Column("attempt", sa.Integer),  # 1 + number of earlier claims; claims and finishes compare it
)
history = sa.Table(
    "history",
    metadata_obj,
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("epoch", sa.Integer, primary_key=True),
    sa.Column("values", sa.JSON, nullable=False),
)
store_meta = sa.Table(
    "store_meta",
    metadata_obj,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)


def make_engine(url: str, timeout_s: float = 30.0) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and its parent folder created."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    database = parsed.database
    if database in (None, "", ":memory:"):
        engine = sa.create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": timeout_s})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (`_begin` below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        if database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # A write transaction takes the write lock at BEGIN, so read-then-write (claim) is atomic.
        write = conn.get_execution_options().get("lossbench_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _transient(exc: BaseException) -> bool:
    """A lock or serialization conflict that a retry resolves (SQLite busy, PostgreSQL deadlock)."""
    text = str(exc).lower()
    return any(
        s in text for s in ("database is locked", "database is busy", "deadlock", "could not serialize")
    )


class ClaimLost(RuntimeError):
    """Another process took this run over (it judged this one dead); its result is not written."""


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become None (PostgreSQL's JSON rejects them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class Store:
    """One row per run in `runs`, its per-epoch rows in `history`; every write is one transaction.

    A run is `claim`ed (marked `running`, with its owner: host, pid, heartbeat) before training and
    `finish`ed as `completed`, `failed` or `diverged`. A `completed` run id is skipped on rerun unless
    `force`; a `running` one is skipped while its owner is alive and taken over once it is not (same
    host: the pid is gone; other host: no heartbeat for `stale_after_s`). Any other status is re-run
    and its old row replaced, so a grid never holds a run twice. Claims are atomic (SQLite: `BEGIN
    IMMEDIATE`; PostgreSQL: `SELECT ... FOR UPDATE` and the primary key), and a claim or finish only
    writes if the row still carries the attempt number it read, so two processes never both run a cell.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///results/lossbench.db`` or ``postgresql+psycopg://...``.
        timeout_s: How long SQLite waits on a lock held by another process.
        stale_after_s: A `running` run on another host with no heartbeat for this long is taken over.
        retries: How often a transaction that hit a lock or deadlock is retried (with backoff).
    """

    def __init__(
        self, url: str, timeout_s: float = 30.0, stale_after_s: float = 3600.0, retries: int = 8
    ) -> None:
        self.url, self.stale_after_s, self.retries = url, stale_after_s, retries
        self.engine = make_engine(url, timeout_s)
        self._beats: dict[str, float] = {}
        for attempt in range(2):  # two processes creating a fresh store at once: the loser retries
            try:
                self._transact(self._create_or_migrate)
                break
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
                if attempt:
                    raise

    def _create_or_migrate(self, conn: sa.Connection) -> None:
        metadata_obj.create_all(conn)
        version = conn.execute(
            sa.select(store_meta.c.value).where(store_meta.c.key == "schema_version").with_for_update()
        ).scalar()
        if version is None:
            conn.execute(store_meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
        elif int(version) > SCHEMA_VERSION:
            raise RuntimeError(
                f"store {self.url} has schema version {version}, newer than this lossbench ({SCHEMA_VERSION}); upgrade"
            )
        elif int(version) < SCHEMA_VERSION:  # 1 -> 2: add the owner columns
            have = {c["name"] for c in sa.inspect(conn).get_columns("runs")}
            for column in runs.columns:
                if column.name not in have:
                    kind = column.type.compile(dialect=conn.dialect)
                    conn.exec_driver_sql(f"ALTER TABLE runs ADD COLUMN {column.name} {kind}")
            conn.execute(
                store_meta.update()
                .where(store_meta.c.key == "schema_version")
                .values(value=str(SCHEMA_VERSION))
            )

    def _transact(self, work: Callable[[sa.Connection], T]) -> T:
        """`work(conn)` in one write transaction, retried with backoff while the database is locked."""
        delay = 0.05
        for attempt in range(self.retries + 1):
            try:
                with self.engine.connect() as conn:
                    conn.execution_options(lossbench_write=True)
                    with conn.begin():
                        return work(conn)
            except sa.exc.OperationalError as exc:
                if attempt == self.retries or not _transient(exc):
                    raise
            time.sleep(delay * (1 + random.random()))
            delay = min(2 * delay, 2.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def owner_alive(self, run_id: str, host: str | None, pid: int | None, heartbeat: datetime | None) -> bool:
        """Whether the process that claimed `run_id` may still be running it."""
        if host == HOST and pid is not None:
            if pid == os.getpid():
                return run_id in _ACTIVE
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:  # alive, owned by another user
                return True
            return True
        if heartbeat is None:
            return False
        if heartbeat.tzinfo is None:  # SQLite returns naive datetimes (stored in UTC)
            heartbeat = heartbeat.replace(tzinfo=utcnow().tzinfo)
        return (utcnow() - heartbeat).total_seconds() < self.stale_after_s

    def claim(self, record: RunRecord, force: bool = False) -> bool:
        """Mark `record` as running by this process; False (nothing written) if it is taken.

        Taken: `completed` (unless `force`), or `running` in a live process (see `owner_alive`).
        """
        labels = record.labels
        now = utcnow()

        def work(conn: sa.Connection) -> int | None:
            row = conn.execute(
                sa.select(runs.c.status, runs.c.owner_host, runs.c.owner_pid, runs.c.heartbeat_at, runs.c.attempt)
                .where(runs.c.run_id == record.run_id)
                .with_for_update()
            ).first()  # fmt: skip
            if row is not None:
                status, host, pid, beat, attempt = row
                if status == "completed" and not force:
                    return None
                if status == "running" and self.owner_alive(record.run_id, host, pid, beat):
                    return None
            attempt = (row[4] or 0) + 1 if row is not None else 1
            values = dict(
                variant=record.variant, status="running",
                **{k: labels.get(k) for k in ("experiment", "dataset", "model", "loss", "weighting", "sampler", "trainer")},
                seed=record.seed, labels=labels, config=_clean(record.config),
                environment=_clean(record.environment), started_at=record.started_at, metrics=None,
                data_meta=None, error=None, finished_at=None, duration_s=None,
                owner_host=HOST, owner_pid=os.getpid(), heartbeat_at=now, attempt=attempt,
            )  # fmt: skip
            if row is None:
                conn.execute(runs.insert().values(run_id=record.run_id, **values))
                return attempt
            conn.execute(history.delete().where(history.c.run_id == record.run_id))
            done = conn.execute(
                runs.update()
                .where(runs.c.run_id == record.run_id, sa.func.coalesce(runs.c.attempt, 0) == (row[4] or 0))
                .values(**values)
            )
            return attempt if done.rowcount == 1 else None

        try:
            attempt = self._transact(work)
        except sa.exc.IntegrityError:  # PostgreSQL: another process inserted it first; look again
            attempt = self._transact(work)
        if attempt is None:
            return False
        _ACTIVE[record.run_id] = attempt
        self._beats[record.run_id] = time.monotonic()
        return True

    def heartbeat(self, run_id: str, min_interval_s: float = 10.0) -> None:
        """Refresh the claim on `run_id` (at most every `min_interval_s`); `ClaimLost` if it was taken over."""
        if time.monotonic() - self._beats.get(run_id, -math.inf) < min_interval_s:
            return
        attempt = _ACTIVE.get(run_id)

        def work(conn: sa.Connection) -> int:
            return conn.execute(
                runs.update()
                .where(runs.c.run_id == run_id, runs.c.attempt == attempt, runs.c.status == "running")
                .values(heartbeat_at=utcnow())
            ).rowcount

        if attempt is None or self._transact(work) != 1:
            _ACTIVE.pop(run_id, None)
            raise ClaimLost(f"run {run_id} was taken over by another process")
        self._beats[run_id] = time.monotonic()

    def finish(
        self,
        run_id: str,
        status: str,
        *,
        metrics: dict[str, Any] | None = None,
        history_rows: Iterable[dict[str, Any]] = (),
        data_meta: dict[str, Any] | None = None,
        environment: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Write the outcome of a run this process claimed, and its history, in one transaction.

        Raises `KeyError` if this process holds no claim on `run_id` and `ClaimLost` if another
        process took it over meanwhile (nothing is written then).
        """
        if status not in STATUSES or status == "running":
            raise ValueError(f"finish status must be one of completed, failed, diverged; got {status!r}")
        if run_id not in _ACTIVE:
            raise KeyError(f"run {run_id} was never claimed by this process")
        attempt = _ACTIVE[run_id]
        rows = [{"run_id": run_id, "epoch": int(r["epoch"]), "values": _clean(r)} for r in history_rows]

        def work(conn: sa.Connection) -> bool:
            now = utcnow()
            started = conn.execute(
                sa.select(runs.c.started_at).where(runs.c.run_id == run_id, runs.c.attempt == attempt)
            ).scalar()
            if started is None:
                return False
            if started.tzinfo is None:  # SQLite returns naive datetimes
                started = started.replace(tzinfo=now.tzinfo)
            values: dict[str, Any] = dict(
                status=status, metrics=_clean(metrics), error=error, finished_at=now,
                duration_s=(now - started).total_seconds(), owner_pid=None, heartbeat_at=now,
            )  # fmt: skip
            if data_meta is not None:
                values["data_meta"] = _clean(dict(data_meta))
            if environment is not None:
                values["environment"] = _clean(environment)
            done = conn.execute(
                runs.update().where(runs.c.run_id == run_id, runs.c.attempt == attempt).values(**values)
            )
            if done.rowcount != 1:
                return False
            conn.execute(history.delete().where(history.c.run_id == run_id))
            if rows:
                conn.execute(history.insert(), rows)
            return True

        written = self._transact(work)
        _ACTIVE.pop(run_id, None)
        self._beats.pop(run_id, None)
        if not written:
            raise ClaimLost(f"run {run_id} was taken over by another process; its result is discarded")

    def stale_runs(self) -> list[dict[str, Any]]:
        """`running` runs whose owner is gone: the next invocation of their grid takes them over."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(runs.c.run_id, runs.c.dataset, runs.c.loss, runs.c.weighting, runs.c.seed,
                          runs.c.owner_host, runs.c.owner_pid, runs.c.heartbeat_at)
                .where(runs.c.status == "running")
            ).mappings().all()  # fmt: skip
        return [
            {**r, "heartbeat_at": str(r["heartbeat_at"])}
            for r in rows
            if not self.owner_alive(r["run_id"], r["owner_host"], r["owner_pid"], r["heartbeat_at"])
        ]

    def status_of(self, run_id: str) -> str | None:
        """The status of `run_id`, or None if the store has never seen it."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(runs.c.status).where(runs.c.run_id == run_id)).scalar()

    def statuses(self, run_ids: Iterable[str]) -> dict[str, str]:
        """The status of each of `run_ids` the store has seen."""
        ids = list(run_ids)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(runs.c.run_id, runs.c.status).where(runs.c.run_id.in_(ids))).all()
        return {r: s for r, s in rows}

    def counts(self) -> dict[str, int]:
        """Number of runs per status (every status present, zeros included)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(runs.c.status, sa.func.count()).group_by(runs.c.status)).all()
        found = {s: int(n) for s, n in rows}
        return {s: found.get(s, 0) for s in STATUSES}

    def history_of(self, run_id: str) -> list[dict[str, Any]]:
        """The per-epoch rows of `run_id`, in epoch order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(history.c["values"]).where(history.c.run_id == run_id).order_by(history.c.epoch)
            ).all()
        return [r[0] if isinstance(r[0], dict) else json.loads(r[0]) for r in rows]
