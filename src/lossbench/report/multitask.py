"""Multi-task summaries from run records: per-sub-task metrics, Δp against single-task baselines, ranks.

A multi-task run records each sub-task's metrics as `{select}/{split}/{task}/{name}` (e.g.
`last/test/left/acc`). A run that trained ONE sub-task alone (`dataset.tasks=[left]`) is a
single-task baseline for it. Each sub-task is scored by its primary metric, the first of
`PRIMARY` it has (accuracy for classification, MAE for regression, mAP for multi-label).

Δp (Maninis et al. 2019; LibMTL's `count_improvement`), in percent:
`Δp = 100 / T * sum_t (-1)^{s_t} (M_t - B_t) / B_t`, with `s_t = 1` when lower is better, `M_t`
the run's value and `B_t` the mean over seeds of the single-task baselines of sub-task t on the
same dataset (same loss and weighting labels when such baselines exist, else any). When a sub-task
has no baseline, the run's Δp is missing and `delta_p` says which runs to add. pandas only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from lossbench.metrics.names import higher_is_better

PRIMARY = ("acc", "mae", "map")
MATCH_LABELS = ("loss", "weighting")


def subtask_columns(runs: pd.DataFrame, select: str, split: str = "test") -> dict[str, str]:
    """Sub-task name -> the column of its primary metric (`last/test/left/acc`), from the frame's columns."""
    found: dict[str, dict[str, str]] = {}
    pattern = re.compile(rf"^{re.escape(select)}/{re.escape(split)}/([^/]+)/([^/]+)$")
    for column in runs.columns:
        m = pattern.match(str(column))
        if m:
            found.setdefault(m.group(1), {})[m.group(2)] = column
    out = {}
    for task, metrics in sorted(found.items()):
        primary = next((metrics[p] for p in PRIMARY if p in metrics), None)
        if primary is not None:
            out[task] = primary
    return out


def delta_p(runs: pd.DataFrame, select: str, split: str = "test") -> tuple[pd.Series, list[str]]:
    """Δp in percent of every multi-task run (NaN for single-task runs or missing baselines) and notes."""
    columns = subtask_columns(runs, select, split)
    result = pd.Series(float("nan"), index=runs.index, name="delta_p")
    if not columns:
        return result, []
    present = runs[list(columns.values())].notna()
    present.columns = list(columns)
    n_tasks = present.sum(axis=1)
    single = runs[n_tasks == 1]
    missing: set[tuple[str, str, str]] = set()
    for idx in runs.index[n_tasks >= 2]:
        run = runs.loc[idx]
        terms = []
        for task, column in columns.items():
            if not present.at[idx, task]:
                continue
            base = single[(single["dataset"] == run["dataset"]) & single[column].notna()]
            same = base
            for label in MATCH_LABELS:
                if label in base.columns:
                    same = same[same[label] == run[label]]
            base = same if len(same) else base
            if base.empty:
                missing.add((str(run["dataset"]), str(run.get("model", "")), task))
                terms = []
                break
            b = float(base[column].mean())
            sign = 1.0 if higher_is_better(column) else -1.0
            terms.append(sign * (float(run[column]) - b) / b)
        if terms:
            result.at[idx] = 100.0 * sum(terms) / len(terms)
    notes = [
        f"Δp: no single-task baseline for sub-task {task!r} of dataset {dataset!r}; add one with `lossbench run "
        f"dataset={dataset} model={model} task_weighting=equal 'dataset.tasks=[{task}]'` (same seeds); Δp left empty"
        for dataset, model, task in sorted(missing)
    ]
    return result, notes


def multitask_summary(
    runs: pd.DataFrame, select: str, rows: Sequence[str], split: str = "test"
) -> tuple[pd.DataFrame, list[str]]:
    """One row per (dataset, method) with sub-task metrics, Δp and its rank; plus `delta_p`'s notes.

    Cells are mean ± std over seeds (accuracy and mAP in %); `rank` is the rank of the mean Δp
    within each dataset (1 = best).
    """
    columns = subtask_columns(runs, select, split)
    if not columns:
        return pd.DataFrame(), []
    dp, notes = delta_p(runs, select, split)
    frame = runs.assign(delta_p=dp)
    multi = frame[frame[list(columns.values())].notna().sum(axis=1) >= 2]
    if multi.empty:
        return pd.DataFrame(), notes
    keys = ["dataset", *rows]
    values = {task: column for task, column in columns.items()} | {"Δp (%)": "delta_p"}
    grouped = multi.groupby(keys, dropna=False)
    out = grouped.size().rename("seeds").reset_index()
    for name, column in values.items():
        stats = grouped[column].agg(["mean", "std"]).reset_index(drop=True)
        scale = 100.0 if column.rsplit("/", 1)[-1] in ("acc", "map") else 1.0
        out[name] = [
            "–" if pd.isna(m) else (f"{m * scale:.2f}" + ("" if pd.isna(s) else f" ± {s * scale:.2f}"))
            for m, s in zip(stats["mean"], stats["std"], strict=True)
        ]
        if column == "delta_p":
            out["rank"] = stats["mean"].groupby(out["dataset"]).rank(ascending=False, method="average")
    return out, notes


def with_delta_p(runs: pd.DataFrame, select: str, split: str = "test") -> pd.DataFrame:
    """`runs` with a `{select}/{split}/delta_p` column when it has multi-task runs (NaN for the others)."""
    if not subtask_columns(runs, select, split):
        return runs
    dp, _ = delta_p(runs, select, split)
    return runs.assign(**{f"{select}/{split}/delta_p": dp})
