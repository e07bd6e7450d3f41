"""The results store: SQLAlchemy Core over SQLite (default) or any URL such as PostgreSQL."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from lossbench.store.record import STATUSES, RunRecord, utcnow

SCHEMA_VERSION = 1
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
        cur = dbapi_conn.cursor()
        if database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine


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

    A run is `claim`ed (inserted as `running`) before training and `finish`ed as `completed`, `failed`
    or `diverged`. A `completed` run id is skipped on rerun unless `force`; any other status is re-run
    and its old row replaced, so a grid never holds a run twice.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///results/lossbench.db`` or ``postgresql+psycopg://...``.
        timeout_s: How long SQLite waits on a lock held by another process.
    """

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self.url = url
        self.engine = make_engine(url, timeout_s)
        metadata_obj.create_all(self.engine)
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(store_meta.c.value).where(store_meta.c.key == "schema_version")
            ).first()
            if row is None:
                conn.execute(store_meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(row[0]) > SCHEMA_VERSION:
                raise RuntimeError(
                    f"store {url} has schema version {row[0]}, newer than this lossbench ({SCHEMA_VERSION}); upgrade"
                )

    def claim(self, record: RunRecord, force: bool = False) -> bool:
        """Mark `record` as running; False (nothing written) if it is already completed and not `force`."""
        labels = record.labels
        with self.engine.begin() as conn:
            status = conn.execute(sa.select(runs.c.status).where(runs.c.run_id == record.run_id)).scalar()
            if status == "completed" and not force:
                return False
            conn.execute(history.delete().where(history.c.run_id == record.run_id))
            conn.execute(runs.delete().where(runs.c.run_id == record.run_id))
            conn.execute(
                runs.insert().values(
                    run_id=record.run_id,
                    variant=record.variant,
                    status="running",
                    **{
                        k: labels.get(k)
                        for k in ("experiment", "dataset", "model", "loss", "weighting", "sampler", "trainer")
                    },
                    seed=record.seed,
                    labels=labels,
                    config=_clean(record.config),
                    environment=_clean(record.environment),
                    started_at=record.started_at,
                )
            )
        return True

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
        """Write the outcome of a claimed run and its history in one transaction."""
        if status not in STATUSES or status == "running":
            raise ValueError(f"finish status must be one of completed, failed, diverged; got {status!r}")
        now = utcnow()
        with self.engine.begin() as conn:
            started = conn.execute(sa.select(runs.c.started_at).where(runs.c.run_id == run_id)).scalar()
            if started is None:
                raise KeyError(f"run {run_id} was never claimed")
            if started.tzinfo is None:  # SQLite returns naive datetimes
                started = started.replace(tzinfo=now.tzinfo)
            values: dict[str, Any] = dict(
                status=status, metrics=_clean(metrics), error=error, finished_at=now,
                duration_s=(now - started).total_seconds(),
            )  # fmt: skip
            if data_meta is not None:
                values["data_meta"] = _clean(dict(data_meta))
            if environment is not None:
                values["environment"] = _clean(environment)
            conn.execute(runs.update().where(runs.c.run_id == run_id).values(**values))
            rows = [{"run_id": run_id, "epoch": int(r["epoch"]), "values": _clean(r)} for r in history_rows]
            conn.execute(history.delete().where(history.c.run_id == run_id))
            if rows:
                conn.execute(history.insert(), rows)

    def status_of(self, run_id: str) -> str | None:
        """The status of `run_id`, or None if the store has never seen it."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(runs.c.status).where(runs.c.run_id == run_id)).scalar()

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
