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
    if friedman is not None:
        stem = plots.cd_diagram(friedman, f"average rank of {select}/{metric}", out_dir, "cd_diagram")
        figures.append(Figure(stem, f"Critical-difference diagram: average rank of {select}/{metric} over "
                                    f"{friedman.datasets} settings (1 = best); methods joined by a bar are "
                                    "not significantly different (Nemenyi, α = 0.05)."))  # fmt: skip
    return figures


def _per_class(
    part: pd.DataFrame,
    details: dict[str, dict[str, Any]],
    select: str,
    setting: Any,
    slug: str,
    out_dir: Path,
) -> list[Figure]:
    key = f"{select}/test/class_acc"
    counts_of = {r: tuple(details[r]["data_meta"].get("class_counts") or ()) for r in part["run_id"]}
    common = Counter(c for c in counts_of.values() if c).most_common(1)
    if not common:
        return []
    counts = common[0][0]
    class_acc: dict[str, list[list[float | None]]] = defaultdict(list)
    for run_id, method in zip(part["run_id"], part["method"], strict=True):
        acc = details[run_id]["metrics"].get(key)
        if acc and counts_of[run_id] == counts and len(acc) == len(counts):
            class_acc[str(method)].append(acc)
    if not class_acc:
        return []
    stem = plots.per_class_accuracy(
        class_acc, counts, f"{setting}: per-class accuracy", out_dir, f"per_class_{slug}"
    )
    skipped = sum(1 for c in counts_of.values() if c != counts)
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
    key = f"{select}/test/bin_mae"
    counts_of = {r: tuple(details[r]["data_meta"].get("bin_counts") or ()) for r in part["run_id"]}
    common = Counter(c for c in counts_of.values() if c).most_common(1)
    if not common:
        return []
    counts = common[0][0]
    bin_mae: dict[str, list[list[float | None]]] = defaultdict(list)
    for run_id, method in zip(part["run_id"], part["method"], strict=True):
        mae = details[run_id]["metrics"].get(key)
        if mae and counts_of[run_id] == counts and len(mae) == len(counts):
            bin_mae[str(method)].append(mae)
    if not bin_mae:
        return []
    stem = plots.error_by_density(
        bin_mae, counts, f"{setting}: error vs training density", out_dir, f"per_bin_{slug}"
    )
    return [Figure(stem, f"{setting}: test MAE per label bin ({select} epoch, mean over seeds) against the bin's "
                         "training count (log scale): the regression twin of the per-class accuracy plot.")]  # fmt: skip
