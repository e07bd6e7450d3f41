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
