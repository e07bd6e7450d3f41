"""Model selection on validation data only: pick each method's trial per dataset (pandas, no torch).

The selection reads ONE column, the study's validation metric (`best/val/balanced_acc` by default);
no test-split number enters it (tests/test_study.py corrupts the test labels and checks the choices
stay the same).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lossbench.report.load import _as_dict
from lossbench.store.db import make_engine, runs

# Status of a trial: completed and diverged trials are decided (a diverged trial scores -inf: it
# lost); failed ones too (their error is in the store); running ones are still open.
DECIDED = ("completed", "diverged", "failed")


def fetch(source: str | Engine, run_ids: Sequence[str]) -> pd.DataFrame:
    """`run_id`, `status`, `duration_s` and every scalar metric of `run_ids` (rows absent from the store are left out).

    `source` is a store URL or the engine of an open `Store` (needed for an in-memory store, which
    exists only inside its engine).
    """
    engine = make_engine(source) if isinstance(source, str) else source
    records: list[dict[str, Any]] = []
    try:
        with engine.connect() as conn:
            for i in range(0, len(run_ids), 500):  # SQLite's bound-parameter limit
                query = sa.select(runs.c.run_id, runs.c.status, runs.c.duration_s, runs.c.metrics).where(
                    runs.c.run_id.in_(list(run_ids[i : i + 500]))
                )
                for row in conn.execute(query).mappings():
                    metrics = {
                        k: v
                        for k, v in _as_dict(row["metrics"]).items()
                        if v is None or isinstance(v, int | float)
                    }
                    records.append({"run_id": row["run_id"], "status": row["status"],
                                    "duration_s": row["duration_s"], **metrics})  # fmt: skip
    finally:
        if isinstance(source, str):
            engine.dispose()
    return pd.DataFrame.from_records(records, columns=None if records else ["run_id", "status", "duration_s"])


def add_selected(frame: pd.DataFrame, epoch: str, metrics: Sequence[str]) -> pd.DataFrame:
    """Add `selected/<metric>` columns: each run's value at its `epoch` rule (`best`: best-validation epoch).

    A run without `best/...` metrics (a post-hoc stage 2, tau-norm or logit adjustment, reports only its
    adjusted final model as `last/...`) contributes its `last/...` value, the only model it has.
    """
    out = frame.copy()
    for metric in metrics:
        primary, final = f"{epoch}/{metric}", f"last/{metric}"
        value = out[primary] if primary in out else pd.Series(np.nan, index=out.index)
        if final in out:
            value = value.where(value.notna(), out[final])
        out[f"selected/{metric}"] = value
    return out


def choose(trials: pd.DataFrame, column: str, higher_is_better: bool = True) -> pd.DataFrame:
    """The chosen trial of each (method, dataset) by `column`, a validation metric.

    Args:
        trials: One row per planned trial: `method`, `dataset`, `trial`, `params` (dict), `status`
            (None when not in the store yet) and `column`.
        column: The selection metric, e.g. `selected/val/balanced_acc`; must name a validation metric.
        higher_is_better: Direction of `column`.

    Returns:
        One row per (method, dataset) whose trials are all decided and at least one completed with a
        finite score: `method`, `dataset`, `trial` (ties: the lowest index), `params`, `score`,
        `trials` (number completed). Pairs with open trials are left out (their seeds wait).
    """
    if "/val/" not in f"/{column}":
        raise ValueError(f"selection must read a validation metric, got {column!r}")
    out = []
    for (method, dataset), part in trials.groupby(["method", "dataset"], sort=False):
        if not part["status"].isin(DECIDED).all():
            continue
        ok = part[(part["status"] == "completed") & part[column].notna()] if column in part else part.iloc[:0]
        if ok.empty:
            continue
        signed = ok[column] if higher_is_better else -ok[column]
        best = ok.loc[signed[signed == signed.max()].index].sort_values("trial").iloc[0]
        out.append({"method": method, "dataset": dataset, "trial": int(best["trial"]), "params": best["params"],
                    "score": float(best[column]), "trials": len(ok)})  # fmt: skip
    return pd.DataFrame(out, columns=["method", "dataset", "trial", "params", "score", "trials"])


def params_text(params: dict[str, Any]) -> str:
    """`loss.gamma=1.7 trainer.lr=0.05`, or `defaults` for trial 0."""
    return (
        " ".join(f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in params.items()) or "defaults"
    )
