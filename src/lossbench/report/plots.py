"""Report figures (matplotlib, Agg backend), each written as PNG and SVG.

Inputs are plain pandas frames and dicts read from the store; every function returns the file stem
it wrote (`out_dir/STEM.png` and `out_dir/STEM.svg`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lossbench.report.stats import Friedman  # noqa: E402


def _save(fig: Any, out_dir: Path, stem: str) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out_dir / f"{stem}.{ext}", dpi=110, metadata={"Date": None} if ext == "svg" else None)
    plt.close(fig)
    return stem


def _grid(n: int, width: float = 3.6, height: float = 3.0) -> tuple[Any, list[Any]]:
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def per_class_accuracy(
    class_acc: Mapping[str, Sequence[Sequence[float | None]]],
    class_counts: Sequence[int],
    title: str,
    out_dir: Path,
    stem: str,
) -> str:
    """Per-class accuracy (mean over seeds) of each method, classes sorted head -> tail by train count.

    Args:
        class_acc: method -> one per-class accuracy list per seed (None for a class absent from test).
        class_counts: Training examples per class (`data_meta.class_counts`).
        title: Figure title.
        out_dir: Folder of the PNG and SVG files.
        stem: File name without extension.
    """
    order = np.argsort(-np.asarray(class_counts), kind="stable")
    fig, ax = plt.subplots(figsize=(8, 4))
    counts_ax = ax.twinx()
    counts_ax.bar(range(len(order)), np.asarray(class_counts)[order], color="0.85", zorder=0)
    counts_ax.set_ylabel("training examples")
    counts_ax.set_yscale("log")
    ax.set_zorder(counts_ax.get_zorder() + 1)
    ax.patch.set_visible(False)
    for method, per_seed in sorted(class_acc.items()):
        values = np.array([[np.nan if a is None else a for a in seed] for seed in per_seed], dtype=float)
        ax.plot(range(len(order)), 100 * np.nanmean(values, axis=0)[order], marker="o", ms=3, label=method)
    ax.set_xticks(range(len(order)), [str(c) for c in order], fontsize=7)
    ax.set_xlabel("class (head → tail by training frequency)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    return _save(fig, out_dir, stem)


def error_by_density(
    bin_mae: Mapping[str, Sequence[Sequence[float | None]]],
    bin_counts: Sequence[int],
    title: str,
    out_dir: Path,
    stem: str,
) -> str:
    """Test MAE of each label bin against its training count (log x), mean over seeds, one line per method.

    The regression twin of `per_class_accuracy`: bins without test examples are left out.

    Args:
        bin_mae: method -> one per-bin MAE list per seed (None for a bin absent from test).
        bin_counts: Training examples per label bin (`data_meta.bin_counts`).
        title: Figure title.
        out_dir: Folder of the PNG and SVG files.
        stem: File name without extension.
    """
    counts = np.asarray(bin_counts, dtype=float)
    order = np.argsort(counts, kind="stable")
    fig, ax = plt.subplots(figsize=(7, 4))
    for method, per_seed in sorted(bin_mae.items()):
        values = np.array([[np.nan if v is None else v for v in seed] for seed in per_seed], dtype=float)
        mean = np.nanmean(values, axis=0) if np.isfinite(values).any() else values[0]
        keep = np.isfinite(mean[order]) & (counts[order] > 0)
        ax.plot(counts[order][keep], mean[order][keep], marker="o", ms=3, label=method)
    ax.set_xscale("log")
    ax.set_xlabel("training examples in the label bin")
    ax.set_ylabel("test MAE in the bin")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, out_dir, stem)


def shot_bars(
    summary: pd.DataFrame,
    title: str,
    out_dir: Path,
    stem: str,
    ylabel: str = "test accuracy (%)",
    scale: float = 100,
) -> str:
    """Many / medium / few-shot bars per method (accuracy, or a regression error), rows `method, group, mean, std`."""
    methods = sorted(summary["method"].unique())
    groups = [g for g in ("many", "medium", "few") if g in set(summary["group"])]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(methods) * len(groups)), 4))
    width = 0.8 / max(1, len(groups))
    for i, group in enumerate(groups):
        part = summary[summary["group"] == group].set_index("method").reindex(methods)
        x = np.arange(len(methods)) + (i - (len(groups) - 1) / 2) * width
        ax.bar(x, scale * part["mean"], width, yerr=scale * part["std"].fillna(0), label=group, capsize=2)
    ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(title="classes", fontsize=8)
    return _save(fig, out_dir, stem)


def learning_curves(history: pd.DataFrame, val_metric: str, title: str, out_dir: Path, stem: str) -> str:
    """Train loss and `val_metric` per epoch, mean over seeds per method (rows `method, epoch, ...`)."""
    fig, (loss_ax, val_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for method, part in sorted(history.groupby("method"), key=lambda kv: kv[0]):
        curve = part.groupby("epoch").mean(numeric_only=True)
        loss_ax.plot(curve.index, curve["train/loss"], label=method)
        if val_metric in curve.columns:
            val_ax.plot(curve.dropna(subset=[val_metric]).index, curve[val_metric].dropna(), label=method)
    loss_ax.set(xlabel="epoch", ylabel="train objective (weighted loss)", title=f"{title}: training")
    val_ax.set(xlabel="epoch", ylabel=val_metric, title=f"{title}: validation")
    val_ax.legend(fontsize=7, ncol=2)
    return _save(fig, out_dir, stem)


def reliability_diagrams(bins: Mapping[str, Mapping[str, Any]], title: str, out_dir: Path, stem: str) -> str:
    """One reliability diagram per method: accuracy per confidence bin against the diagonal.

    Args:
        bins: method -> {"count": [...], "acc": [...], "conf": [...]} pooled over seeds, with `ece`.
        title: Figure title.
        out_dir: Folder of the PNG and SVG files.
        stem: File name without extension.
    """
    fig, axes = _grid(len(bins))
    for ax, (method, rel) in zip(axes, sorted(bins.items()), strict=True):
        count = np.asarray(rel["count"], dtype=float)
        k = len(count)
        edges = np.linspace(0, 1, k + 1)
        acc = np.array([np.nan if a is None else a for a in rel["acc"]], dtype=float)
        conf = np.array([np.nan if c is None else c for c in rel["conf"]], dtype=float)
        ax.bar(edges[:-1], np.nan_to_num(acc), 1 / k, align="edge", edgecolor="k", lw=0.5, label="accuracy")
        ax.bar(edges[:-1], np.nan_to_num(conf - acc), 1 / k, bottom=np.nan_to_num(acc), align="edge",
               color="tab:red", alpha=0.3, label="gap")  # fmt: skip
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy")
        ax.set_title(f"{method}\nECE {100 * rel['ece']:.2f} %", fontsize=9)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(title)
    return _save(fig, out_dir, stem)


def cd_diagram(result: Friedman, title: str, out_dir: Path, stem: str) -> str:
    """Critical-difference diagram (scikit-posthocs) of the average ranks with Nemenyi cliques."""
    import scikit_posthocs as sp

    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.3 * len(result.ranks)))
    sp.critical_difference_diagram(result.ranks, result.nemenyi, ax=ax)
    ax.set_title(
        f"{title}\nFriedman p = {result.p:.3g} over {result.datasets} datasets; "
        f"Nemenyi CD = {result.critical_difference:.2f} (α = 0.05)",
        fontsize=9,
    )
    return _save(fig, out_dir, stem)
