"""The store's typed schema (a misspelt `store.*` key fails when the config is composed)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING


@dataclass
class StoreConfig:
    """Where run records go: any SQLAlchemy URL."""

    _target_: str = "lossbench.store.db.Store"
    url: str = MISSING  # sqlite:///results/lossbench.db | sqlite:// (memory) | postgresql+psycopg://...
    timeout_s: float = 30.0  # SQLite busy timeout under concurrent writers
    stale_after_s: float = (
        3600.0  # a `running` run on another host with no heartbeat for this long is taken over
    )
    retries: int = 8  # retries (with backoff) of a transaction that met a lock or deadlock
