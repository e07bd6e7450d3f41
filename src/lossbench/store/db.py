"""The results store: SQLAlchemy Core over SQLite (default) or any URL such as PostgreSQL."""

from __future__ import annotations

import json
import math
import os
import random
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from lossbench.groups import LABEL_COLUMNS
from lossbench.store.record import STATUSES, RunRecord, utcnow

# 2: runs.owner_host, owner_pid, heartbeat_at, attempt (added to a v1 store on open)
# 3: run ids from `lossbench.identity` (normalised, execution settings left out); a v2 store's ids are
#    recomputed from each row's stored config when it is first opened for writing (`_migrate_ids`)
SCHEMA_VERSION = 3
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


class StoreError(ValueError):
    """A store that cannot be opened as asked (missing, foreign, corrupted, read-only); one-line message."""


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite file URL; None for in-memory SQLite, other databases and non-URLs."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def is_sqlite_file(path: Path) -> bool:
    """Whether `path` is a SQLite database file (its 16-byte header)."""
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def _readonly_connect(path: Path, timeout_s: float) -> Any:
    """A read-only sqlite3 connection to `path` (URI `mode=ro`: never creates nor writes the file)."""
    import sqlite3
    from urllib.parse import quote

    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        return sqlite3.connect(uri, uri=True, timeout=timeout_s, check_same_thread=False)
    except sqlite3.OperationalError:
        # A WAL store in a read-only folder cannot get its shared-memory file; with no pending log
        # the file alone is the whole database, so read it as immutable.
        if Path(f"{path}-wal").exists() and Path(f"{path}-wal").stat().st_size:
            raise
        return sqlite3.connect(uri + "&immutable=1", uri=True, timeout=timeout_s, check_same_thread=False)


def make_engine(url: str, timeout_s: float = 30.0, readonly: bool = False) -> Engine:
    """An engine for `url`: SQLite gets WAL (when writing), a busy timeout and foreign keys.

    `readonly=True` never creates or writes anything: a missing SQLite file raises `StoreError`, the
    file is opened with SQLite's `mode=ro`, PostgreSQL sessions are read-only. Writing creates a SQLite
    file's parent folder (only `lossbench run` opens a store for writing).
    """
    try:
        parsed = sa.engine.make_url(url)
        if parsed.get_backend_name() != "sqlite":
            engine = sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise StoreError(
            f"cannot use store URL {url!r} ({exc}); give a SQLAlchemy URL such as sqlite:///results/lossbench.db"
        ) from exc
    if parsed.get_backend_name() != "sqlite":
        if readonly:

            @sa.event.listens_for(engine, "connect")
            def _readonly(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                cur.close()

        return engine
    path = sqlite_file(url)
    if path is None:
        engine = sa.create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    elif readonly:
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            raise StoreError(f"no store at {path}: it {what}; check the path (lossbench run creates a store)")
        engine = sa.create_engine("sqlite://", creator=lambda: _readonly_connect(path, timeout_s))
    else:
        if path.is_dir():
            raise StoreError(
                f"store path {path} is a folder; give a file, e.g. store.url=sqlite:///{path}/lossbench.db"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": timeout_s})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (`_begin` below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        if readonly:
            cur.execute("PRAGMA query_only=ON")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # A write transaction takes the write lock at BEGIN, so read-then-write (claim) is atomic.
        write = conn.get_execution_options().get("lossbench_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _where(url: str) -> str:
    path = sqlite_file(url)
    return str(path) if path is not None else sa.engine.make_url(url).render_as_string(hide_password=True)


def _database_error(url: str, exc: BaseException) -> StoreError:
    """One line for a database that SQLite or the server cannot read at all."""
    text = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    if "not a database" in text or "malformed" in text:
        return StoreError(
            f"{_where(url)} is not a readable SQLite database ({text}): it is corrupted or not a store; "
            "point --store / store.url at a lossbench store, or restore this one from a backup"
        )
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return StoreError(
            f"cannot open the store {_where(url)} ({text}); check the file's and its folder's permissions"
        )
    return StoreError(f"cannot use the store {_where(url)}: {text}")


def check_store(conn: sa.Connection, url: str, *, allow_empty: bool) -> bool:
    """Raise `StoreError` unless the database at `conn` is a lossbench store; True if it has no tables.

    A database holding other tables (its own `runs`, say) is foreign: refused, never written to.
    A store with a newer schema than this lossbench is refused too.
    """
    tables = set(sa.inspect(conn).get_table_names())
    if not tables:
        if allow_empty:
            return True
        raise StoreError(
            f"{_where(url)} is empty, not a lossbench store; run `lossbench run` with store.url pointing "
            "there to create one, or give the path of an existing store"
        )
    if not {"runs", "store_meta"} <= tables:
        raise StoreError(
            f"{_where(url)} is a database that is not a lossbench store (its tables: "
            f"{', '.join(sorted(tables)[:6])}); it was left untouched: use another store path"
        )
    version = conn.execute(sa.select(store_meta.c.value).where(store_meta.c.key == "schema_version")).scalar()
    if version is None or not str(version).isdigit():
        raise StoreError(
            f"{_where(url)} has no lossbench schema version; it is not a store this lossbench wrote"
        )
    if int(version) > SCHEMA_VERSION:
        raise StoreError(
            f"store {_where(url)} has schema version {version}, newer than this lossbench's "
            f"({SCHEMA_VERSION}); upgrade lossbench"
        )
    return False


def integrity_problem(conn: sa.Connection) -> str | None:
    """SQLite's `PRAGMA quick_check` verdict: None when it is ok, else its first finding."""
    if conn.dialect.name != "sqlite":
        return None
    rows = [str(r[0]) for r in conn.exec_driver_sql("PRAGMA quick_check").fetchall()]
    if rows == ["ok"]:
        return None
    findings = [ln.strip() for r in rows for ln in r.splitlines() if ln.strip() and not ln.startswith("***")]
    return findings[0] if findings else "no answer"


@contextmanager
def read_connection(url: str) -> Iterator[sa.Connection]:
    """A connection to the store at `url` opened read-only (`Store.reader`); database errors -> `StoreError`."""
    store = Store.reader(url)
    try:
        with store.engine.connect() as conn:
            yield conn
    except sa.exc.DBAPIError as exc:
        raise _database_error(url, exc) from exc
    finally:
        store.engine.dispose()


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


def _migrate_ids(conn: sa.Connection) -> None:
    """Schema 2 -> 3: give every run the id `lossbench.identity` computes from its stored config.

    The history rows follow their run. Rows whose config now has the same identity (e.g. reruns that
    differed only in `trainer.device` or in `seed=0` vs `seed=0.0`) cannot share one id: the
    completed one finished last takes the new id, so the grid finds it; the others keep their old id
    and every value they had, so nothing is lost. Rows without a config keep their id.
    """
    from lossbench.identity import run_id_of, variant_of

    rows = conn.execute(sa.select(runs)).mappings().all()
    by_new: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        config = row["config"] if isinstance(row["config"], dict) else json.loads(row["config"] or "null")
        try:
            new_id, new_variant = run_id_of(config), variant_of(config)
        except (ValueError, TypeError, AttributeError):  # no config, or a seed that was never an integer
            continue
        by_new.setdefault(new_id, []).append({**row, "variant": new_variant})
    for new_id, group in by_new.items():
        group.sort(key=lambda r: (r["status"] == "completed", str(r["finished_at"] or "")), reverse=True)
        keep = group[0]
        old_id = keep["run_id"]
        if old_id != new_id:
            conn.execute(runs.insert().values(**{**keep, "run_id": new_id}))
            conn.execute(history.update().where(history.c.run_id == old_id).values(run_id=new_id))
            conn.execute(runs.delete().where(runs.c.run_id == old_id))
        else:
            conn.execute(runs.update().where(runs.c.run_id == old_id).values(variant=keep["variant"]))


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
        self,
        url: str,
        timeout_s: float = 30.0,
        stale_after_s: float = 3600.0,
        retries: int = 8,
        readonly: bool = False,
    ) -> None:
        self.url, self.stale_after_s, self.retries, self.readonly = url, stale_after_s, retries, readonly
        self._beats: dict[str, float] = {}
        self._held: set[str] = set()  # run ids this Store claimed and has not finished
        self.created = False  # whether opening it created a new, empty store
        self.engine = make_engine(url, timeout_s, readonly=readonly)
        try:
            if readonly:
                with self.engine.connect() as conn:
                    check_store(conn, url, allow_empty=False)
                    problem = integrity_problem(conn)
                if problem is not None:  # a report from a damaged store could silently miss runs
                    raise StoreError(
                        f"store {_where(url)} is corrupted (PRAGMA quick_check: {problem}); restore it from a "
                        f"backup or salvage it with `sqlite3 {_where(url)} .recover`"
                    )
                return
            self._open_for_writing(url)
        except sa.exc.DBAPIError as exc:
            self.engine.dispose()
            raise _database_error(url, exc) from exc
        except StoreError:
            self.engine.dispose()
            raise

    @classmethod
    def reader(cls, url: str) -> Store:
        """The store at `url` opened read-only: never created, migrated or written (`StoreError` if absent)."""
        return cls(url, readonly=True)

    def _open_for_writing(self, url: str) -> None:
        """Refuse foreign and corrupted databases before writing anything; then create or migrate."""
        path = sqlite_file(url)
        if path is not None and path.exists() and path.stat().st_size and not is_sqlite_file(path):
            raise StoreError(
                f"{path} is not a SQLite database; it was left untouched: use another store path"
            )
        with self.engine.connect() as conn:
            empty = check_store(conn, url, allow_empty=True)
            problem = integrity_problem(conn) if not empty else None
        if problem is not None:
            raise StoreError(
                f"store {path} is corrupted (PRAGMA quick_check: {problem}); nothing was written: restore it "
                f"from a backup or salvage it with `sqlite3 {path} .recover`, or use another store path"
            )
        if path is not None:
            raw = self.engine.raw_connection()  # outside a transaction, as SQLite requires
            try:
                raw.cursor().execute("PRAGMA journal_mode=WAL")  # persistent: set once, in the file
            finally:
                raw.close()
        self.created = empty
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
            return
        if int(version) > SCHEMA_VERSION:
            raise StoreError(
                f"store {_where(self.url)} has schema version {version}, newer than this lossbench's "
                f"({SCHEMA_VERSION}); upgrade lossbench"
            )
        if int(version) < 2:  # 1 -> 2: add the owner columns
            have = {c["name"] for c in sa.inspect(conn).get_columns("runs")}
            for column in runs.columns:
                if column.name not in have:
                    kind = column.type.compile(dialect=conn.dialect)
                    conn.exec_driver_sql(f"ALTER TABLE runs ADD COLUMN {column.name} {kind}")
        if int(version) < 3:
            _migrate_ids(conn)
        if int(version) < SCHEMA_VERSION:
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
                **{k: labels.get(k) for k in LABEL_COLUMNS},
                seed=record.seed, labels=labels, config=_clean(record.config),
                environment=_clean(record.environment), started_at=record.started_at, metrics=None,
                data_meta=None, error=None, finished_at=None, duration_s=None,
                owner_host=HOST, owner_pid=os.getpid(), heartbeat_at=now, attempt=attempt,
            )  # fmt: skip
            if row is None:
                conn.execute(runs.insert().values(run_id=record.run_id, **values))
            else:
                conn.execute(history.delete().where(history.c.run_id == record.run_id))
                done = conn.execute(
                    runs.update()
                    .where(
                        runs.c.run_id == record.run_id, sa.func.coalesce(runs.c.attempt, 0) == (row[4] or 0)
                    )
                    .values(**values)
                )
                if done.rowcount != 1:
                    return None
            # held before the commit: a Ctrl-C between the commit and `claim` returning still releases it
            # (if the commit never happens, `finish` finds no row of this attempt and owner, and writes nothing)
            _ACTIVE[record.run_id] = attempt
            self._held.add(record.run_id)
            return attempt

        prior = (_ACTIVE.get(record.run_id), record.run_id in self._held)

        def unhold() -> None:  # back to the holds before this call (a live claim of this process stays)
            if prior[0] is None:
                _ACTIVE.pop(record.run_id, None)
            else:
                _ACTIVE[record.run_id] = prior[0]
            if not prior[1]:
                self._held.discard(record.run_id)

        try:
            try:
                attempt = self._transact(work)
            except sa.exc.IntegrityError:  # PostgreSQL: another process inserted it first; look again
                attempt = self._transact(work)
        except Exception:  # not claimed (a KeyboardInterrupt keeps the hold for `release_claims`)
            unhold()
            raise
        if attempt is None:  # taken (a retried transaction may have held it on an attempt that rolled back)
            unhold()
            return False
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
            raise ValueError(f"finish status must be one of {', '.join(STATUSES[1:])}; got {status!r}")
        if run_id not in _ACTIVE:
            raise KeyError(f"run {run_id} was never claimed by this process")
        attempt = _ACTIVE[run_id]
        rows = [{"run_id": run_id, "epoch": int(r["epoch"]), "values": _clean(r)} for r in history_rows]

        def work(conn: sa.Connection) -> bool:
            now = utcnow()
            mine = (runs.c.run_id == run_id, runs.c.attempt == attempt, runs.c.owner_host == HOST,
                    runs.c.owner_pid == os.getpid())  # fmt: skip
            started = conn.execute(sa.select(runs.c.started_at).where(*mine)).scalar()
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
            done = conn.execute(runs.update().where(*mine).values(**values))
            if done.rowcount != 1:
                return False
            conn.execute(history.delete().where(history.c.run_id == run_id))
            if rows:
                conn.execute(history.insert(), rows)
            return True

        try:
            written = self._transact(work)
        finally:
            _ACTIVE.pop(run_id, None)
            self._beats.pop(run_id, None)
            self._held.discard(run_id)
        if not written:
            raise ClaimLost(f"run {run_id} was taken over by another process; its result is discarded")

    def release_claims(self, status: str, error: str) -> int:
        """Finish every run this Store still holds as `status` (`interrupted`/`failed`); how many it wrote.

        The one exit path of `lossbench run` calls it; a run it cannot write (the disk is full, the
        database gone) stays `running` with a dead owner, which the next run of its grid takes over.
        """
        done = 0
        for run_id in sorted(self._held):
            try:
                self.finish(run_id, status, error=error)
                done += 1
            except (ClaimLost, KeyError, sa.exc.SQLAlchemyError, OSError):
                pass
        return done

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
