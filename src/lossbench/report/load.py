"""Read the store into pandas. Imports neither torch nor the training code."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa

from lossbench.store.db import make_engine, runs

LABELS = [
    "run_id",
    "variant",
    "status",
    "experiment",
    "dataset",
    "model",
    "loss",
    "weighting",
    "sampler",
    "trainer",
    "seed",
]


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return value if isinstance(value, dict) else json.loads(value)


def load_runs(
    url: str, statuses: Sequence[str] | None = ("completed",), experiment: str | None = None
) -> pd.DataFrame:
    """One row per run: the labels, then one column per scalar metric (e.g. `last/test/acc`).

    Args:
        url: SQLAlchemy URL of the store.
        statuses: Keep only runs with these statuses (None keeps all).
        experiment: Keep only runs of this experiment config (`experiment=NAME`).
    """
    engine = make_engine(url)
    query = sa.select(
        *[runs.c[c] for c in LABELS], runs.c.metrics, runs.c.duration_s, runs.c.error, runs.c.labels
    )
    if statuses is not None:
        query = query.where(runs.c.status.in_(list(statuses)))
    if experiment is not None:
        query = query.where(runs.c.experiment == experiment)
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
    except sa.exc.OperationalError as exc:
        raise ValueError(f"cannot read runs from {url}: {exc.orig}") from exc
    finally:
        engine.dispose()
    records = []
    for row in rows:
        rec = {c: row[c] for c in LABELS}
        # labels without a column of their own (stage2) come from the run's `labels` JSON
        rec.update({k: v for k, v in _as_dict(row["labels"]).items() if k not in rec})
        rec["duration_s"] = row["duration_s"]
        rec["error"] = row["error"]
        for key, value in _as_dict(row["metrics"]).items():
            if value is None or isinstance(value, int | float):
                rec[key] = value
        records.append(rec)
    return pd.DataFrame.from_records(records, columns=None if records else [*LABELS, "duration_s", "error"])
