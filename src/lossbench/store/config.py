"""The store's typed schema (a misspelt `store.*` key fails when the config is composed)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

EXECUTION = {"execution": True}  # where and how runs are stored never changes what they compute


@dataclass
class StoreConfig:
    """Where run records go: any SQLAlchemy URL. Every field is an execution setting (not in the run id)."""

    _target_: str = "lossbench.store.db.Store"
    # sqlite:///results/lossbench.db | sqlite:// (memory) | postgresql+psycopg://...
    url: str = field(default=MISSING, metadata=EXECUTION)
    timeout_s: float = field(default=30.0, metadata=EXECUTION)  # SQLite busy timeout under concurrent writers
    # a `running` run on another host with no heartbeat for this long is taken over
    stale_after_s: float = field(default=3600.0, metadata=EXECUTION)
    retries: int = field(
        default=8, metadata=EXECUTION
    )  # retries (with backoff) of a transaction hitting a lock
