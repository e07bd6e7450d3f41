"""Pivot run records into mean ± std (or 95 % CI) tables over seeds (pandas only)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from scipy import stats

from lossbench.metrics.names import higher_is_better  # drives bold (best) and underline (second)
from lossbench.report.formats import FORMATS, join_labels, render_cells

PERCENT = {"acc", "balanced_acc", "macro_f1", "worst_class_acc", "many_acc", "medium_acc", "few_acc", "ece"}
PERCENT |= {"map", "micro_f1", "cp", "cr", "cf1", "op", "or", "of1"}  # multi-label (metrics/multilabel.py)
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


def t_halfwidth(std: pd.Series, n: pd.Series, level: float = 0.95) -> pd.Series:
    """Half-width of the Student-t confidence interval of a mean: t_{(1+level)/2, n-1} * std / sqrt(n)."""
    df = (n - 1).where(n > 1)
    return pd.Series(stats.t.ppf((1 + level) / 2, df), index=std.index) * std / n.pow(0.5)


def summarize(
    runs: pd.DataFrame,
    column: str,
    rows: Sequence[str] = ("loss", "weighting"),
    cols: Sequence[str] = ("dataset",),
) -> pd.DataFrame:
    """Mean, std (ddof=1), n and 95 % t-interval half-width `ci` of `column` per `rows` x `cols` cell."""
    if column not in runs.columns:
        available = sorted(c for c in runs.columns if "/" in c or c.endswith("_s"))
        raise ValueError(f"no metric {column!r} in the store; available: {', '.join(available) or 'none'}")
    missing = [k for k in [*rows, *cols] if k not in runs.columns]
    if missing:
        raise ValueError(
            f"unknown label(s) {', '.join(missing)}; labels are run columns or dotted config keys"
        )
    keys = [*rows, *cols]
    grouped = runs.dropna(subset=[column]).groupby(keys, dropna=False)[column]
    summary = grouped.agg(mean="mean", std="std", n="count").reset_index()
    return summary.assign(ci=t_halfwidth(summary["std"], summary["n"]))


def summarize_metrics(
    runs: pd.DataFrame,
    metrics: Sequence[str],
    select: str,
    rows: Sequence[str] = ("loss", "weighting"),
    cols: Sequence[str] = ("dataset",),
) -> pd.DataFrame:
    """`summarize` for several metrics at once, with a `metric` column (usable as a row or column label)."""
    rows = [r for r in rows if r != "metric"]
    cols = [c for c in cols if c != "metric"]
    parts = [summarize(runs, metric_column(m, select), rows, cols).assign(metric=m) for m in metrics]
    return pd.concat(parts, ignore_index=True)


def pooled_cells(runs: pd.DataFrame, rows: Sequence[str], cols: Sequence[str]) -> list[str]:
    """Table cells whose runs differ in more than the seed (e.g. two `trainer.epochs`): they would be pooled."""
    keys = [k for k in [*rows, *cols] if k != "metric"]
    variants = runs.groupby(keys, dropna=False)["variant"].nunique()
    return [" / ".join(map(str, k if isinstance(k, tuple) else (k,))) for k, n in variants.items() if n > 1]


def _rank_marks(frame: pd.DataFrame) -> pd.Series:
    """1 for the best mean of each column (per metric), 2 for the second best, 0 otherwise.

    A second best is marked only in columns with at least three distinct means (of two, it is the worst).
    """
    group = ["_col", "metric"] if "metric" in frame.columns else ["_col"]
    out = pd.Series(0, index=frame.index)
    for _, part in frame.groupby(group):
        signed = part["_signed"]
        distinct = sorted(signed.dropna().unique(), reverse=True)
        if len(part) > 1 and distinct:
            out[part.index[signed == distinct[0]]] = 1
            if len(distinct) > 2:
                out[part.index[signed == distinct[1]]] = 2
    return out


def render_table(
    summary: pd.DataFrame,
    metric: str,
    fmt: str = "markdown",
    rows: Sequence[str] = ("loss", "weighting"),
    cols: Sequence[str] = ("dataset",),
    ci: bool = False,
    caption: str | None = None,
) -> str:
    """Render a `summarize` frame as markdown, latex (booktabs), html or csv.

    Cells read `mean ± std (n)` (`mean ± 95 % CI half-width (n)` with `ci`), in % for accuracy-like
    metrics; the best mean per column is bold and the second underlined (per metric when `summary`
    has a `metric` column). CSV gives one row per `rows` combination with `COL_mean`, `COL_std`, `COL_n`
    (and `COL_ci` with `ci`) columns.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    names = summary["metric"] if "metric" in summary.columns else pd.Series(metric, index=summary.index)
    short = names.str.rsplit("/", n=1).str[-1]
    scale = short.map(lambda n: 100.0 if n in PERCENT else 1.0)
    sign = short.map(lambda n: 1.0 if higher_is_better(n) else -1.0)
    if "metric" in summary.columns:  # columns keep the order the metrics were asked in
        order = {m: i for i, m in enumerate(dict.fromkeys(summary["metric"]))}
        keys = [c for c in cols if c != "metric"]
        summary = summary.assign(_order=summary["metric"].map(order)).sort_values(
            [*keys, "_order"], kind="stable"
        )
    col_key = join_labels(summary, cols, " / ")
    frame = summary.assign(_col=col_key, _scale=scale, _signed=summary["mean"] * sign)
    index = list(rows)
    # a dotted key some runs lack (weighting.smooth of weighting=none) reads "–": pivot_table drops NaN labels
    frame[index] = frame[index].astype(object).where(frame[index].notna(), "–")
    if fmt == "csv":
        stats_ = ["mean", "std", "n", *(["ci"] if ci else [])]
        wide = frame.pivot_table(index=index, columns="_col", values=stats_, aggfunc="first")
        wide.columns = [f"{col}_{stat}" for stat, col in wide.columns]
        ordered = [f"{c}_{s}" for c in sorted(frame["_col"].unique()) for s in stats_]
        # reindex: a statistic that is missing everywhere (std of one seed) stays an empty column
        return wide.reindex(columns=ordered).reset_index().to_csv(index=False)
    frame["_mark"] = _rank_marks(frame)
    return render_cells(frame, index, fmt, ci=ci, caption=caption)


def caption_for(metrics: Sequence[str], select: str, ci: bool, source: str = "") -> str:
    """The table caption: metric(s), unit, selection rule, spread statistic and the marks."""
    named = ", ".join(f"{m} (%)" if m.rsplit("/", 1)[-1] in PERCENT else m for m in metrics)
    rule = SELECTIONS[select] if any("/" in m for m in metrics) else "per run"
    spread = "mean ± 95 % t-interval half-width" if ci else "mean ± std"
    text = (
        f"{named} at the {rule}: {spread} over seeds (number of seeds in parentheses); "
        "best per column in bold, second underlined."
    )
    return f"{text} Store: {source}" if source else text
