"""Gather what each figure needs from the store and draw it (one figure per setting and kind)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lossbench.report import plots
from lossbench.report.load import load_history
from lossbench.report.stats import Friedman

# many/medium/few bars: metric suffix, scale, title, caption, y label (accuracy in %, regression MAE as is)
SHOT_FIGURES = (
    ("acc", 100.0, "accuracy by class frequency", "test accuracy", "test accuracy (%)"),
    ("mae", 1.0, "MAE by label-bin frequency", "test MAE (label bins by training count)", "test MAE"),
)


@dataclass(frozen=True)
class Figure:
    """A figure written as `STEM.png` and `STEM.svg`, with the caption the HTML report shows."""

    stem: str
    caption: str


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "all"


def pooled_reliability(rels: Sequence[dict[str, list[Any]]]) -> dict[str, list[Any]]:
    """Sum the per-bin counts over seeds; bin accuracy and confidence become count-weighted means."""
    count = np.sum([r["count"] for r in rels], axis=0).astype(float)
    out: dict[str, list[Any]] = {"count": [int(c) for c in count]}
    for key in ("acc", "conf"):
        weighted = np.sum(
            [[(v or 0.0) * c for v, c in zip(r[key], r["count"], strict=True)] for r in rels], axis=0
        )
        out[key] = [float(w / c) if c else None for w, c in zip(weighted, count, strict=True)]
    return out


def make_figures(
    url: str,
    runs: pd.DataFrame,
    details: dict[str, dict[str, Any]],
    select: str,
    metric: str,
    out_dir: Path,
    friedman: Friedman | None,
) -> list[Figure]:
    """Every figure of the HTML report for `runs` (columns `method` and `setting` added by the caller).

    Per setting: per-class accuracy head -> tail, many/medium/few bars, learning curves and
    reliability diagrams (each drawn only where the store holds its data); then the CD diagram.
    """
    figures: list[Figure] = []
    name = metric.rsplit("/", 1)[-1]
    history = load_history(url, list(runs["run_id"]))
    for setting, part in runs.groupby("setting", sort=True):
        slug = _slug(str(setting))
        figures += _per_class(part, details, select, setting, slug, out_dir)
        figures += _per_bin(part, details, select, setting, slug, out_dir)
        for suffix, scale, title, caption, ylabel in SHOT_FIGURES:  # classification, regression
            groups = [g for g in ("many", "medium", "few") if f"{select}/test/{g}_{suffix}" in part.columns]
            long = pd.concat(
                [part[["method", f"{select}/test/{g}_{suffix}"]].set_axis(["method", "v"], axis=1).assign(group=g)
                 for g in groups]
            ) if groups else pd.DataFrame()  # fmt: skip
            if not long.empty and long["v"].notna().any():
                shots = long.groupby(["method", "group"])["v"].agg(["mean", "std"]).reset_index()
                stem = f"shots_{slug}" if suffix == "acc" else f"shots_{suffix}_{slug}"
                stem = plots.shot_bars(
                    shots, f"{setting}: {title}", out_dir, stem, ylabel=ylabel, scale=scale
                )
                figures.append(Figure(stem, f"{setting}: many / medium / few-shot {caption} ({select} epoch), "
                                            "mean ± std over seeds."))  # fmt: skip
        hist = history[history["run_id"].isin(part["run_id"])] if not history.empty else history
        if not hist.empty and "train/loss" in hist.columns:
            hist = hist.merge(part[["run_id", "method"]], on="run_id")
            stem = plots.learning_curves(hist, f"val/{name}", str(setting), out_dir, f"curves_{slug}")
            figures.append(
                Figure(stem, f"{setting}: training objective and val/{name} per epoch, mean over seeds.")
            )
        rel: dict[str, Any] = {}
        for method, mpart in part.groupby("method"):
            rels = [details[r]["metrics"].get(f"{select}/test/reliability") for r in mpart["run_id"]]
            rels = [r for r in rels if r]
            if rels:
                rel[str(method)] = {
                    **pooled_reliability(rels),
                    "ece": float(mpart[f"{select}/test/ece"].mean()),
                }
        if rel:
            stem = plots.reliability_diagrams(
                rel, f"{setting}: calibration (test)", out_dir, f"reliability_{slug}"
            )
            figures.append(Figure(stem, f"{setting}: reliability diagrams on the test split ({select} epoch), "
                                        "bins pooled over seeds; ECE is the mean over seeds."))  # fmt: skip
    figures += _tradeoffs(runs, select, out_dir)
    if friedman is not None:
        stem = plots.cd_diagram(friedman, f"average rank of {select}/{metric}", out_dir, "cd_diagram")
        figures.append(Figure(stem, f"Critical-difference diagram: average rank of {select}/{metric} over "
                                    f"{friedman.datasets} settings (1 = best); methods joined by a bar are "
                                    "not significantly different (Nemenyi, α = 0.05)."))  # fmt: skip
    return figures


def _by_method(
    part: pd.DataFrame, details: dict[str, dict[str, Any]], metric: str, counts_key: str
) -> tuple[tuple[int, ...], dict[str, list[list[float | None]]], int] | None:
    """Per-group values of `metric` (one list per run) by method, over the runs sharing the commonest counts.

    Returns (those training counts, `data_meta[counts_key]`; the values by method; how many runs had
    other counts), or None when no run has both.
    """
    counts_of = {r: tuple(details[r]["data_meta"].get(counts_key) or ()) for r in part["run_id"]}
    common = Counter(c for c in counts_of.values() if c).most_common(1)
    if not common:
        return None
    counts = common[0][0]
    values: dict[str, list[list[float | None]]] = defaultdict(list)
    for run_id, method in zip(part["run_id"], part["method"], strict=True):
        value = details[run_id]["metrics"].get(metric)
        if value and counts_of[run_id] == counts and len(value) == len(counts):
            values[str(method)].append(value)
    if not values:
        return None
    return counts, values, sum(1 for c in counts_of.values() if c != counts)


def _per_class(
    part: pd.DataFrame,
    details: dict[str, dict[str, Any]],
    select: str,
    setting: Any,
    slug: str,
    out_dir: Path,
) -> list[Figure]:
    found = _by_method(part, details, f"{select}/test/class_acc", "class_counts")
    if found is None:
        return []
    counts, class_acc, skipped = found
    stem = plots.per_class_accuracy(
        class_acc, counts, f"{setting}: per-class accuracy", out_dir, f"per_class_{slug}"
    )
    note = f" ({skipped} runs with other class counts left out)" if skipped else ""
    return [Figure(stem, f"{setting}: test accuracy per class ({select} epoch, mean over seeds), classes ordered "
                         f"head → tail by training count (grey bars, log scale){note}.")]  # fmt: skip


def _per_bin(
    part: pd.DataFrame,
    details: dict[str, dict[str, Any]],
    select: str,
    setting: Any,
    slug: str,
    out_dir: Path,
) -> list[Figure]:
    """Regression: test MAE per label bin against the bin's training count (runs sharing the most common counts)."""
    found = _by_method(part, details, f"{select}/test/bin_mae", "bin_counts")
    if found is None:
        return []
    counts, bin_mae, _ = found
    stem = plots.error_by_density(
        bin_mae, counts, f"{setting}: error vs training density", out_dir, f"per_bin_{slug}"
    )
    return [Figure(stem, f"{setting}: test MAE per label bin ({select} epoch, mean over seeds) against the bin's "
                         "training count (log scale): the regression twin of the per-class accuracy plot.")]  # fmt: skip


def _tradeoffs(runs: pd.DataFrame, select: str, out_dir: Path) -> list[Figure]:
    """Per dataset with two sub-tasks: their test metrics per method (the multi-task trade-off)."""
    from lossbench.report.multitask import subtask_columns

    figures: list[Figure] = []
    columns = subtask_columns(runs, select)
    for dataset, part in runs.groupby("dataset", sort=True):
        tasks = [t for t, c in columns.items() if part[c].notna().any()]
        if len(tasks) != 2:
            continue
        both = part[part[[columns[t] for t in tasks]].notna().all(axis=1)]
        if both.empty:
            continue
        scale = {t: 100.0 if columns[t].rsplit("/", 1)[-1] in ("acc", "map") else 1.0 for t in tasks}
        agg = both.groupby("method")[[columns[t] for t in tasks]].agg(["mean", "std"])
        points = pd.DataFrame({"method": agg.index})
        for t in tasks:
            points[f"{t}_mean"] = agg[(columns[t], "mean")].to_numpy() * scale[t]
            points[f"{t}_std"] = agg[(columns[t], "std")].to_numpy() * scale[t]
        stem = plots.task_tradeoff(points, tasks, f"{dataset}: {tasks[0]} vs {tasks[1]}", out_dir,
                                   f"tradeoff_{_slug(str(dataset))}")  # fmt: skip
        figures.append(Figure(stem, f"{dataset}: test {tasks[0]} against test {tasks[1]} per method "
                                    f"({select} epoch), mean ± std over seeds."))  # fmt: skip
    return figures
