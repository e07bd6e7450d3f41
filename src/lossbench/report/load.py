"""Read the store into pandas. Imports neither torch nor the training code."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa

from lossbench.groups import LABEL_COLUMNS
from lossbench.store.db import history, read_connection, runs

LABELS = ["run_id", "variant", "status", *LABEL_COLUMNS, "seed"]


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return value if isinstance(value, dict) else json.loads(value)


def config_value(config: dict[str, Any], key: str) -> Any:
    """The value at dotted `key` (e.g. `dataset.imbalance_ratio`) of a resolved config, or None."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if node is None or isinstance(node, str | int | float | bool) else str(node)


def load_runs(
    url: str,
    statuses: Sequence[str] | None = ("completed",),
    experiment: str | None = None,
    config_keys: Sequence[str] = (),
) -> pd.DataFrame:
    """One row per run: the labels, then one column per scalar metric (e.g. `last/test/acc`).

    Args:
        url: SQLAlchemy URL of the store.
        statuses: Keep only runs with these statuses (None keeps all).
        experiment: Keep only runs of this experiment config (`experiment=NAME`).
        config_keys: Dotted keys of the resolved config added as columns (`dataset.imbalance_ratio`).
    """
    query = sa.select(
        *[runs.c[c] for c in LABELS],
        runs.c.metrics,
        runs.c.duration_s,
        runs.c.error,
        runs.c.labels,
        runs.c.config,
    )
    if statuses is not None:
        query = query.where(runs.c.status.in_(list(statuses)))
    if experiment is not None:
        query = query.where(runs.c.experiment == experiment)
    with read_connection(url) as conn:  # read-only: never creates, migrates or writes
        rows = conn.execute(query).mappings().all()
    records = []
    for row in rows:
        rec = {c: row[c] for c in LABELS}
        # labels without a column of their own (stage2) come from the run's `labels` JSON
        rec.update({k: v for k, v in _as_dict(row["labels"]).items() if k not in rec})
        rec["duration_s"] = row["duration_s"]
        rec["error"] = row["error"]
        config = _as_dict(row["config"])
        rec.update({key: config_value(config, key) for key in config_keys})
        for key, value in _as_dict(row["metrics"]).items():
            if value is None or isinstance(value, int | float):
                rec[key] = value
        records.append(rec)
    return pd.DataFrame.from_records(
        records, columns=None if records else [*LABELS, "duration_s", "error", *config_keys]
    )


def load_details(url: str, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Everything the store holds about `run_ids` (config, data_meta, environment, all metrics, lists included)."""
    cols = ["run_id", "labels", "config", "metrics", "data_meta", "environment", "started_at", "duration_s"]
    out: dict[str, dict[str, Any]] = {}
    with read_connection(url) as conn:
        for i in range(0, len(run_ids), 500):  # stay under SQLite's bound-parameter limit
            query = sa.select(*[runs.c[c] for c in cols]).where(runs.c.run_id.in_(list(run_ids[i : i + 500])))
            for row in conn.execute(query).mappings():
                rec = dict(row)
                for key in ("labels", "config", "metrics", "data_meta", "environment"):
                    rec[key] = _as_dict(rec[key])
                out[rec["run_id"]] = rec
    return out


def load_history(url: str, run_ids: Sequence[str]) -> pd.DataFrame:
    """Per-epoch rows (`run_id`, `epoch`, `train/loss`, `val/acc`, ...) of `run_ids`, in epoch order."""
    records: list[dict[str, Any]] = []
    with read_connection(url) as conn:
        for i in range(0, len(run_ids), 500):
            query = (
                sa.select(history.c.run_id, history.c.epoch, history.c["values"])
                .where(history.c.run_id.in_(list(run_ids[i : i + 500])))
                .order_by(history.c.run_id, history.c.epoch)
            )
            for run_id, epoch, values in conn.execute(query):
                records.append({**_as_dict(values), "run_id": run_id, "epoch": epoch})
    return pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=["run_id", "epoch"])
