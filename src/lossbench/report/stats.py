"""Significance over seeds and datasets: paired tests vs a baseline, average ranks, Friedman + Nemenyi.

Follows Demšar (2006), "Statistical Comparisons of Classifiers over Multiple Data Sets" (JMLR 7):
methods are compared per dataset over paired seeds (Holm-corrected across methods), and across
datasets by their average rank, the Friedman test and the Nemenyi post-hoc test (critical difference).
The statistics come from scipy, statsmodels and scikit-posthocs; nothing is hand-rolled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from lossbench.report.formats import join_labels

TESTS = ("ttest", "wilcoxon")


def method_labels(frame: pd.DataFrame, rows: Sequence[str]) -> pd.Series:
    """One label per row joining the method columns: `ldam/drw`."""
    return join_labels(frame, rows, "/")


def paired_vs_baseline(
    runs: pd.DataFrame,
    column: str,
    baseline: str,
    rows: Sequence[str] = ("loss", "weighting"),
    block: str = "dataset",
    test: str = "ttest",
    higher_is_better: bool = True,
) -> pd.DataFrame:
    """Every method against `baseline` per `block` value, paired over seeds, Holm-corrected per block.

    Args:
        runs: `load_runs` frame (one row per run, a `seed` column).
        column: Metric column, e.g. `last/test/acc`.
        baseline: Method label as `method_labels` writes it (`ce/none`).
        rows: Columns that name a method.
        block: Column whose values are compared separately (the dataset).
        test: `ttest` (paired Student t, `scipy.stats.ttest_rel`) or `wilcoxon` (signed-rank,
            `scipy.stats.wilcoxon`; with 3 seeds its smallest two-sided p is 0.25).
        higher_is_better: Direction used for the `better` column.

    Returns:
        One row per block x method: `n` paired seeds, `diff` (mean of method - baseline), `p`,
        `p_holm` (Holm over the methods of the block, statsmodels `multipletests`) and `better`
        (`yes`/`no` where Holm p < 0.05, `~` otherwise, `n/a` where the test is undefined: fewer
        than 2 paired seeds, or a t-test on differences that are all equal).
    """
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; valid: {', '.join(TESTS)}")
    frame = runs.dropna(subset=[column]).assign(method=lambda f: method_labels(f, rows))
    if baseline not in set(frame["method"]):
        raise ValueError(
            f"unknown baseline {baseline!r}; methods: {', '.join(sorted(frame['method'].unique()))}"
        )
    out = []
    for value, part in frame.groupby(block, dropna=False):
        wide = part.pivot_table(index="seed", columns="method", values=column, aggfunc="mean")
        if baseline not in wide.columns:
            continue
        rows_: list[dict[str, object]] = []
        for method in (m for m in wide.columns if m != baseline):
            pair = wide[[method, baseline]].dropna()
            d = pair[method] - pair[baseline]
            p = np.nan  # undefined: fewer than 2 pairs, or a t-test on constant differences
            if len(d) >= 2 and (d == 0).all():
                p = 1.0
            elif len(d) >= 2:
                with np.errstate(all="ignore"):
                    result = (
                        stats.ttest_rel(pair[method], pair[baseline])
                        if test == "ttest"
                        else stats.wilcoxon(d)
                    )
                p = float(result.pvalue)
            rows_.append({block: value, "method": method, "baseline": baseline, "n": len(d),
                          "diff": float(d.mean()) if len(d) else np.nan, "p": p})  # fmt: skip
        tested = [r for r in rows_ if not np.isnan(r["p"])]
        if tested:
            holm = multipletests([r["p"] for r in tested], alpha=0.05, method="holm")[1]
            for r, ph in zip(tested, holm, strict=True):
                r["p_holm"] = float(ph)
        for r in rows_:
            ph = r.get("p_holm", np.nan)
            improves = (r["diff"] > 0) == higher_is_better
            r["better"] = "n/a" if np.isnan(ph) else ("yes" if improves else "no") if ph < 0.05 else "~"
        out += rows_
    columns = [block, "method", "baseline", "n", "diff", "p", "p_holm", "better"]
    return pd.DataFrame(out, columns=columns)


def score_matrix(summary: pd.DataFrame, rows: Sequence[str], block: str = "dataset") -> pd.DataFrame:
    """Mean score per dataset (rows) x method (columns), from a `summarize` frame."""
    frame = summary.assign(method=method_labels(summary, rows))
    return frame.pivot_table(index=block, columns="method", values="mean", aggfunc="mean")


def average_ranks(scores: pd.DataFrame, higher_is_better: bool = True) -> pd.Series:
    """Average rank of each method over the datasets it was run on (1 = best; ties share the mean rank)."""
    ranks = scores.rank(axis=1, ascending=not higher_is_better, method="average")
    return ranks.mean(axis=0).sort_values().rename("average_rank")


@dataclass(frozen=True)
class Friedman:
    """Friedman test over complete datasets with the Nemenyi post-hoc p-values."""

    statistic: float
    p: float
    datasets: int
    ranks: pd.Series  # average rank per method, 1 = best
    nemenyi: pd.DataFrame  # method x method p-values
    critical_difference: float  # Nemenyi CD at alpha = 0.05


def friedman_nemenyi(scores: pd.DataFrame, higher_is_better: bool = True, alpha: float = 0.05) -> Friedman:
    """Friedman test (`scipy.stats.friedmanchisquare`) and Nemenyi p-values (scikit-posthocs).

    Uses the datasets on which every method has a score. The critical difference is
    q_alpha sqrt(k (k + 1) / (6 N)) with q_alpha the studentized-range quantile / sqrt(2)
    (Demšar 2006, section 3.2.2), from `scipy.stats.studentized_range`.

    Raises:
        ValueError: fewer than 2 complete datasets or fewer than 3 methods (Friedman is undefined).
    """
    import scikit_posthocs as sp

    complete = scores.dropna(axis=0, how="any")
    n, k = complete.shape
    if n < 2 or k < 3:
        raise ValueError(
            f"Friedman/Nemenyi needs >= 2 datasets on which all of >= 3 methods ran; got {n} x {k}"
        )
    signed = complete if higher_is_better else -complete
    statistic, p = stats.friedmanchisquare(*[signed[c].to_numpy() for c in signed.columns])
    nemenyi = sp.posthoc_nemenyi_friedman(signed.to_numpy())
    nemenyi.index = nemenyi.columns = list(signed.columns)
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2)
    cd = float(q * np.sqrt(k * (k + 1) / (6 * n)))
    return Friedman(float(statistic), float(p), n, average_ranks(complete, higher_is_better), nemenyi, cd)
