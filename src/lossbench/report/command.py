"""`lossbench report`: arguments and orchestration (tables, statistics, targets, the HTML report).

`add_arguments` is plain argparse; `report` imports pandas and friends only when it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

FORMATS = ("markdown", "csv", "latex", "html")


def add_arguments(rep: argparse.ArgumentParser) -> None:
    """The options of `lossbench report`."""
    rep.add_argument(
        "--store", help="SQLAlchemy URL (default: the configured sqlite:///results/lossbench.db)"
    )
    rep.add_argument("--metric", default="test/acc",
                     help="split/name, or a comma list (then `metric` becomes a column label unless --rows "
                          "names it), e.g. test/acc,test/few_acc (default: test/acc)")  # fmt: skip
    rep.add_argument("--select", default="last", choices=["last", "best", "oracle"],
                     help="epoch whose metrics are shown: last, best (validation) or oracle (test) (default: last)")  # fmt: skip
    rep.add_argument("--format", default="markdown", choices=FORMATS,
                     help="markdown, csv, latex (booktabs) or html (a folder with index.html, figures and "
                          "run provenance; see --out) (default: markdown)")  # fmt: skip
    rep.add_argument("--rows", default="loss,weighting",
                     help="comma list of row labels: run labels or dotted config keys (default: loss,weighting)")  # fmt: skip
    rep.add_argument("--cols", default="dataset",
                     help="comma list of column labels, e.g. dataset,dataset.imbalance_ratio (default: dataset)")  # fmt: skip
    rep.add_argument("--experiment", help="only runs of this experiment config (experiment=NAME)")
    rep.add_argument("--ci", action="store_true",
                     help="show the 95%% t-interval half-width over seeds instead of the std")  # fmt: skip
    rep.add_argument("--baseline",
                     help="method (row labels joined by '/', e.g. ce/none) to test every other method against "
                          "per column setting, paired over seeds, Holm-corrected; also adds average ranks and "
                          "the Friedman/Nemenyi test (the html report always has those two)")  # fmt: skip
    rep.add_argument("--test", default="ttest", choices=["ttest", "wilcoxon"],
                     help="paired test for --baseline (default: ttest; wilcoxon needs >= 6 seeds to reach p < 0.05)")  # fmt: skip
    rep.add_argument("--targets",
                     help="YAML of published numbers (or a bundled name: ldam_drw) to print beside ours")  # fmt: skip
    rep.add_argument("--out",
                     help="write to this file instead of printing; with --format html a folder "
                          "(default for html: results/report)")  # fmt: skip


def _fail(message: str, code: int = 2) -> None:
    print(f"lossbench: {message}", file=sys.stderr)
    raise SystemExit(code)


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def report(ns: argparse.Namespace, url: str) -> None:
    """Run `lossbench report` with parsed arguments `ns` on the store at `url` (opened read-only)."""
    try:
        check_output(ns.out or ("results/report" if ns.format == "html" else None), url, ns.format == "html")
        _report(ns, url)
    except ValueError as exc:
        _fail(str(exc).strip().splitlines()[0])
    except OSError as exc:
        where = exc.filename or ns.out
        _fail(f"cannot write {where}: {exc.strerror or exc}; choose a writable --out path")


def check_output(out: str | None, url: str, folder: bool) -> None:
    """`ValueError` unless `out` may be written: never a store, any SQLite file, or the wrong kind of path.

    `folder`: the output is a folder (the html report), else a file.
    """
    from lossbench.store.db import is_sqlite_file, sqlite_file

    if out is None:
        return
    path = Path(out).expanduser()
    store = sqlite_file(url)
    if store is not None and path.resolve() in {Path(f"{store}{s}").resolve() for s in ("", "-wal", "-shm")}:
        raise ValueError(f"--out {out} is the store itself; it is never overwritten: choose another path")
    if path.is_file() and is_sqlite_file(path):
        raise ValueError(
            f"--out {out} is a SQLite database (a store?); it is never overwritten: choose another path"
        )
    if folder and path.exists() and not path.is_dir():
        raise ValueError(f"--out {out} is a file, but the html report is a folder: give a folder path")
    if not folder and path.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name, e.g. --out {path / 'table.md'}")


def _report(ns: argparse.Namespace, url: str) -> None:
    from lossbench.report import targets as targets_mod
    from lossbench.report.formats import join_labels, render_frame
    from lossbench.report.load import load_runs
    from lossbench.report.stats import method_labels
    from lossbench.report.tables import caption_for, pooled_cells, render_table, summarize_metrics

    metrics = _split(ns.metric)
    rows, cols = _split(ns.rows), _split(ns.cols)
    if len(metrics) > 1 and "metric" not in rows + cols:
        cols = [*cols, "metric"]
    targets = targets_mod.read_targets(ns.targets) if ns.targets else []
    keys = sorted({k for k in rows + cols if "." in k} | set(targets_mod.config_keys(targets)))
    runs = load_runs(url, experiment=ns.experiment, config_keys=keys)
    if runs.empty:
        which = f" of experiment {ns.experiment!r}" if ns.experiment else ""
        _fail(f"no completed runs{which} in {url} (run some with `lossbench run`)", code=1)
    unknown = [k for k in rows + cols if k != "metric" and k not in runs.columns]
    if unknown:
        labels = ", ".join(c for c in runs.columns if "/" not in c and c not in ("error", "duration_s"))
        raise ValueError(
            f"unknown label(s) {', '.join(unknown)}; use run labels ({labels}) or dotted config keys"
        )
    from lossbench.report.multitask import with_delta_p

    runs = with_delta_p(runs, ns.select)  # `--metric test/delta_p` (multi-task runs; NaN elsewhere)
    pooled = pooled_cells(runs, rows, cols)
    if pooled:
        print(f"lossbench: warning: {len(pooled)} cell(s) pool runs whose configs differ beyond the seed "
              f"(e.g. {pooled[0]}); filter with --experiment or use a separate store.url", file=sys.stderr)  # fmt: skip
    summary = summarize_metrics(runs, metrics, ns.select, rows, cols)
    caption = caption_for(metrics, ns.select, ns.ci, url)
    fmt = ns.format
    table = render_table(summary, metrics[0], "html" if fmt == "html" else fmt, rows, cols, ns.ci,
                         caption=None if fmt == "csv" else caption)  # fmt: skip
    setting_cols = [c for c in cols if c != "metric"]
    setting = join_labels(runs, setting_cols, " / ") if setting_cols else "all"
    method_rows = [r for r in rows if r != "metric"]
    runs = runs.assign(method=method_labels(runs, method_rows), setting=setting)
    sections: list[tuple[str, str]] = []
    notes: list[str] = []
    friedman = _statistics(runs, summary, metrics[0], method_rows, ns, sections, notes, fmt)
    _multitask_section(runs, ns.select, method_rows, sections, notes, fmt)
    if targets:
        comparison = targets_mod.compare(runs, targets)
        sections.append(("Reproduction targets", render_frame(comparison, "html" if fmt == "html" else fmt,
                         f"Published numbers ({targets_mod.sources(targets)}) beside ours: delta = ours - published; inside_ci: "
                         "published value inside our seeds' 95 % t-interval.", "tab:targets")))  # fmt: skip
    if fmt == "html":
        _write_html(ns, url, runs, metrics[0], table, sections, notes, friedman)
        return
    text = "\n".join([table, *(body for _, body in sections), *(f"note: {n}" for n in notes)])
    if ns.out:
        Path(ns.out).parent.mkdir(parents=True, exist_ok=True)
        Path(ns.out).write_text(text)
        print(f"wrote {ns.out}")
    else:
        print(text, end="" if text.endswith("\n") else "\n")


def _statistics(
    runs: Any, summary: Any, metric: str, rows: list[str], ns: argparse.Namespace,
    sections: list[tuple[str, str]], notes: list[str], fmt: str,
) -> Any:  # fmt: skip
    """Paired tests vs the baseline, average ranks and Friedman/Nemenyi; returns the Friedman result or None."""
    if not ns.baseline and fmt != "html":
        return None
    from lossbench.metrics.names import higher_is_better
    from lossbench.report.formats import join_labels, render_frame
    from lossbench.report.stats import average_ranks, friedman_nemenyi, paired_vs_baseline, score_matrix
    from lossbench.report.tables import metric_column

    out_fmt = "html" if fmt == "html" else fmt
    column = metric_column(metric, ns.select)
    higher = higher_is_better(metric)
    if ns.baseline:
        paired = paired_vs_baseline(runs, column, ns.baseline, rows, "setting", ns.test, higher)
        sections.append(("Paired tests against the baseline", render_frame(paired, out_fmt,
            f"{column}: each method vs {ns.baseline} per setting, paired over seeds ({ns.test}), "
            "p Holm-corrected over the methods of a setting; better = yes/no where p_holm < 0.05.", "tab:paired")))  # fmt: skip
    else:
        notes.append("No paired tests: pass --baseline METHOD (e.g. ce/none) to test each method against it.")
    setting_cols = [c for c in _split(ns.cols) if c != "metric"]
    per_setting = summary[summary["metric"] == metric]
    per_setting = per_setting.assign(
        setting=join_labels(per_setting, setting_cols, " / ") if setting_cols else "all"
    )

    scores = score_matrix(per_setting, rows, "setting")
    ranks = average_ranks(scores, higher).reset_index()
    ranks.columns = ["method", "average_rank"]
    sections.append(("Average rank across settings", render_frame(ranks, out_fmt,
                     f"Average rank of {column} over {len(scores)} setting(s) (1 = best).", "tab:ranks")))  # fmt: skip
    try:
        result = friedman_nemenyi(scores, higher)
    except ValueError as exc:
        notes.append(f"No Friedman test or critical-difference diagram: {exc}.")
        return None
    sections.append(("Friedman test", render_frame(
        _friedman_frame(result), out_fmt,
        f"Friedman test of {column} over {result.datasets} settings; Nemenyi critical difference at α = 0.05.",
        "tab:friedman")))  # fmt: skip
    return result


def _multitask_section(
    runs: Any, select: str, rows: list[str], sections: list[tuple[str, str]], notes: list[str], fmt: str
) -> None:
    """Per-sub-task metrics, Δp against single-task baselines and its rank, when the store has multi-task runs."""
    from lossbench.report.formats import render_frame
    from lossbench.report.multitask import multitask_summary

    if "task_weighting" in runs.columns and "task_weighting" not in rows:
        rows = [*rows, "task_weighting"]
    table, mt_notes = multitask_summary(
        runs.drop(columns=[f"{select}/test/delta_p"], errors="ignore"), select, rows
    )
    notes.extend(mt_notes)
    if table.empty:
        return
    sections.append(("Multi-task", render_frame(table, "html" if fmt == "html" else fmt,
        f"Per sub-task primary test metric ({select} epoch; accuracy in %), mean ± std over seeds; Δp in % "
        "against the single-task baselines of the same dataset (LibMTL's definition); rank of the mean Δp "
        "within each dataset (1 = best).", "tab:multitask")))  # fmt: skip


def _friedman_frame(result: Any) -> Any:
    import pandas as pd

    return pd.DataFrame([{"settings": result.datasets, "methods": len(result.ranks), "chi2": result.statistic,
                          "p": result.p, "critical_difference": result.critical_difference}])  # fmt: skip


def _write_html(
    ns: argparse.Namespace, url: str, runs: Any, metric: str, table: str,
    sections: list[tuple[str, str]], notes: list[str], friedman: Any,
) -> None:  # fmt: skip
    from lossbench.report.figures import make_figures
    from lossbench.report.html import provenance, write_report
    from lossbench.report.load import load_details

    out_dir = Path(ns.out or "results/report")
    details = load_details(url, list(runs["run_id"]))
    figures = make_figures(url, runs, details, ns.select, metric, out_dir, friedman)
    from lossbench.groups import RUN_LABELS

    labels = [k for k in RUN_LABELS if k != "trainer"]
    title = f"lossbench report{f': {ns.experiment}' if ns.experiment else ''}"
    path = write_report(out_dir, title, [("Results", table), *sections], figures, notes,
                        provenance(details, labels), url)  # fmt: skip
    print(f"wrote {path}")
