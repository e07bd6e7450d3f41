"""Pivot run records into mean ± std tables (pandas only)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

# metric name (last path component) -> higher is better; drives bolding.
HIGHER_IS_BETTER = {
    "acc": True, "balanced_acc": True, "macro_f1": True, "worst_class_acc": True,
    "many_acc": True, "medium_acc": True, "few_acc": True, "nll": False, "ece": False,
    "train_time_s": False, "peak_mem_mb": False, "duration_s": False,
}  # fmt: skip
PERCENT = {"acc", "balanced_acc", "macro_f1", "worst_class_acc", "many_acc", "medium_acc", "few_acc", "ece"}
SELECTIONS = {
    "last": "final epoch",
    "best": "epoch with the best validation score",
    "oracle": "epoch with the best TEST accuracy (selection on test; as some papers report)",
}


def metric_column(metric: str, select: str) -> str:
    """`test/acc` + `last` -> `last/test/acc`; run-level metrics (`duration_s`) are returned as they are."""
    if "/" not in metric:
        return metric
    if select not in SELECTIONS:
        raise ValueError(f"unknown selection {select!r}; valid: {', '.join(SELECTIONS)}")
    return f"{select}/{metric}"


def summarize(
    runs: pd.DataFrame,
    column: str,
    rows: Sequence[str] = ("loss", "weighting"),
    cols: Sequence[str] = ("dataset",),
) -> pd.DataFrame:
    """Mean, std (ddof=1) and n over seeds of `column`, one row per `rows` x `cols` combination."""
    if column not in runs.columns:
        available = sorted(c for c in runs.columns if "/" in c or c.endswith("_s"))
        raise ValueError(f"no metric {column!r} in the store; available: {', '.join(available) or 'none'}")
    keys = [*rows, *cols]
    grouped = runs.dropna(subset=[column]).groupby(keys, dropna=False)[column]
    return grouped.agg(mean="mean", std="std", n="count").reset_index()


def pooled_cells(runs: pd.DataFrame, rows: Sequence[str], cols: Sequence[str]) -> list[str]:
    """Table cells whose runs differ in more than the seed (e.g. two `trainer.epochs`): they would be pooled."""
    keys = [*rows, *cols]
    variants = runs.groupby(keys, dropna=False)["variant"].nunique()
    return [" / ".join(map(str, k if isinstance(k, tuple) else (k,))) for k, n in variants.items() if n > 1]


def _best(values: pd.Series, higher: bool) -> pd.Series:
    target = values.max() if higher else values.min()
    return values == target


def render_table(
    summary: pd.DataFrame,
    metric: str,
    fmt: str = "markdown",
    rows: Sequence[str] = ("loss", "weighting"),
    cols: Sequence[str] = ("dataset",),
) -> str:
    """Render a `summarize` frame: markdown (best per column in bold, `mean ± std (n)`) or csv."""
    name = metric.rsplit("/", 1)[-1]
    scale = 100.0 if name in PERCENT else 1.0
    higher = HIGHER_IS_BETTER.get(name, True)
    col_key = summary[list(cols)].astype(str).agg(" / ".join, axis=1)
    frame = summary.assign(_col=col_key)
    if fmt == "csv":
        wide = frame.pivot_table(
            index=list(rows), columns="_col", values=["mean", "std", "n"], aggfunc="first"
        )
        wide.columns = [f"{col}_{stat}" for stat, col in wide.columns]
        ordered = [f"{c}_{s}" for c in sorted(frame["_col"].unique()) for s in ("mean", "std", "n")]
        return wide[ordered].reset_index().to_csv(index=False)
    if fmt != "markdown":
        raise ValueError(f"unknown format {fmt!r}; valid: markdown, csv")
    frame["_best"] = frame.groupby("_col")["mean"].transform(lambda s: _best(s, higher))
    digits = 2 if scale == 100.0 else 4

    def cell(r: pd.Series) -> str:
        std = "–" if pd.isna(r["std"]) else f"{r['std'] * scale:.{digits}f}"
        text = f"{r['mean'] * scale:.{digits}f} ± {std}"
        return (f"**{text}**" if r["_best"] else text) + f" ({int(r['n'])})"

    frame["_cell"] = frame.apply(cell, axis=1)
    wide = frame.pivot_table(index=list(rows), columns="_col", values="_cell", aggfunc="first").fillna("")
    wide.columns.name = None
    return wide.reset_index().to_markdown(index=False)
