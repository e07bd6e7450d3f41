"""The study's leaderboard: ranks, Friedman + CD diagram, win/tie/loss vs the baseline, per-dataset tables.

Pandas and `lossbench.report` only (no torch). Statistics follow Demšar (2006) through
`report.stats`: per dataset each method is compared with the baseline over paired seeds (t-test,
Holm over the methods of the dataset); across datasets by average rank, the Friedman test and the
Nemenyi critical difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lossbench.metrics.names import higher_is_better
from lossbench.report.formats import render_frame
from lossbench.report.stats import Friedman, average_ranks, friedman_nemenyi, paired_vs_baseline
from lossbench.report.tables import PERCENT, render_table, summarize
from lossbench.study.select import params_text
from lossbench.study.spec import Study


def protocol(study: Study) -> str:
    """The caption every board table carries: how the numbers were obtained."""
    return (
        f"Protocol (DomainBed-style random search): every method gets the same {study.trials} trial(s) per "
        f"dataset (trial 0: the method's default hyperparameters; the others drawn at random from its declared "
        f"space, study seed {study.study_seed}), trained with seed {study.trial_seed}; per dataset the trial with "
        f"the best {study.select_metric} (validation split only) is chosen, then re-trained with fresh seeds "
        f"{', '.join(map(str, study.seeds))}, whose {study.report_metric} (test split) is reported; both read at "
        f"each run's {'best-validation' if study.select_epoch == 'best' else 'final'} epoch (post-hoc stage-2 "
        "runs: the adjusted final model)."
    )


@dataclass
class Board:
    """Every table of the leaderboard as frames, plus the machine-written summary."""

    per_dataset: pd.DataFrame  # summarize(): method x dataset mean, std, n, ci
    scores: pd.DataFrame  # dataset x method mean
    ranks: pd.DataFrame  # one row per method: rank, mean, wins/ties/losses, cost
    paired: pd.DataFrame  # dataset x method paired tests against the baseline
    chosen: pd.DataFrame
    friedman: Friedman | None
    summary: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def build_board(study: Study, finals: pd.DataFrame, chosen: pd.DataFrame, trials: pd.DataFrame) -> Board:
    """Aggregate completed final runs (`method`, `dataset`, `seed`, `status`, the report column, `train_time_s`).

    `trials` (with `train_time_s`) adds the tuning cost to each method's total training time. Final runs
    that are not completed (running in another process, failed) are left out and counted in a note.
    """
    column = study.report_column
    higher = higher_is_better(column)
    done = finals[finals["status"] == "completed"].dropna(subset=[column])
    if done.empty:
        raise ValueError("no completed final runs yet: run the study (lossbench study study=NAME)")
    notes = []
    diverged = int((finals["status"] == "diverged").sum())
    missing = int((finals["status"] != "completed").sum()) - diverged
    if diverged:
        notes.append(f"{diverged} final run(s) diverged (recorded as diverged, left out of the means and counted "
                     "per method in not_completed); rerunning does not change them.")  # fmt: skip
    if missing:
        notes.append(f"{missing} final run(s) are not completed (running elsewhere or failed): "
                     "rerun the study for the full board.")  # fmt: skip
    order = [m.name for m in study.methods]
    per_dataset = summarize(done, column, rows=("method",), cols=("dataset",))
    scores = per_dataset.pivot_table(index="dataset", columns="method", values="mean")
    scores = scores[[m for m in order if m in scores.columns]]
    paired = paired_vs_baseline(done, column, study.baseline, rows=("method",), block="dataset",
                                higher_is_better=higher)  # fmt: skip
    friedman = None
    try:
        friedman = friedman_nemenyi(scores, higher)
    except ValueError as exc:
        notes.append(f"No Friedman test or CD diagram: {exc}.")
    complete = scores.dropna(axis=0, how="any")
    ranks = average_ranks(complete if len(complete) else scores, higher)
    rows = []
    # cost = training time (`train_time_s`: the loop and its evaluations, not data loading), trials + seeds
    cost = pd.concat(
        [f[["method", "train_time_s"]] for f in (finals, trials) if "train_time_s" in f], ignore_index=True
    )
    for method in ranks.index:
        spent = (
            cost[cost["method"] == method]["train_time_s"].dropna() if len(cost) else pd.Series(dtype=float)
        )
        row = {"method": method, "average_rank": float(ranks[method]), "mean": float(scores[method].mean()),
               "datasets": int(scores[method].notna().sum()),
               "not_completed": int(((finals["method"] == method) & (finals["status"] != "completed")).sum()),
               "train_s_per_run": float(spent.mean()) if len(spent) else np.nan, "train_s_total": float(spent.sum())}  # fmt: skip
        if method != study.baseline:  # the baseline's win/tie/loss cells stay empty
            vs = paired[paired["method"] == method]
            sign = np.sign(vs["diff"]) * (1 if higher else -1)
            row.update({"wins": int((sign > 0).sum()), "ties": int((sign == 0).sum()), "losses": int((sign < 0).sum()),
                        "sig_wins": int((vs["better"] == "yes").sum()), "sig_losses": int((vs["better"] == "no").sum())})  # fmt: skip
        rows.append(row)
    columns = ["method", "average_rank", "mean", "datasets", "wins", "ties", "losses", "sig_wins", "sig_losses",
               "not_completed", "train_s_per_run", "train_s_total"]  # fmt: skip
    table = pd.DataFrame(rows, columns=columns).astype({c: "Int64" for c in columns[4:10]})
    board = Board(per_dataset, scores, table, paired, chosen, friedman, notes=notes)
    board.summary = summarize_board(study, board)
    return board


def summarize_board(study: Study, board: Board) -> list[str]:
    """Plain sentences: what is significant and what is not."""
    base, n = study.baseline, len(board.scores)
    lines = []
    f = board.friedman
    if f is not None:
        verdict = (
            "the methods' ranks differ significantly" if f.p < 0.05 else "no significant difference in ranks"
        )
        lines.append(f"Friedman test over {f.datasets} datasets x {len(f.ranks)} methods: chi2 = {f.statistic:.2f}, "
                     f"p = {f.p:.3g}: {verdict} (α = 0.05).")  # fmt: skip
        best = f.ranks.index[0]
        tied = [m for m in f.ranks.index[1:] if f.ranks[m] - f.ranks[best] < f.critical_difference]
        lines.append(f"Best average rank: {best} ({f.ranks[best]:.2f}); within the Nemenyi critical difference "
                     f"({f.critical_difference:.2f}) of it: {', '.join(tied) or 'none'}.")  # fmt: skip
        if base in f.ranks:
            beyond = [
                m for m in f.ranks.index if f.nemenyi.loc[m, base] < 0.05 and f.ranks[m] < f.ranks[base]
            ]
            lines.append(
                f"Significantly better ranked than {base} (Nemenyi p < 0.05): {', '.join(beyond) or 'none'}."
            )
    for r in board.ranks.itertuples():
        if r.method == base:
            continue
        lines.append(f"{r.method} beats {base} on {r.wins} of {r.datasets} datasets (significant on {r.sig_wins}), "
                     f"loses on {r.losses} (significant on {r.sig_losses}).")  # fmt: skip
    if n < 2:
        lines.append(f"Only {n} dataset has results: ranks across datasets are not meaningful yet.")
    return lines


def _chosen_frame(chosen: pd.DataFrame) -> pd.DataFrame:
    frame = chosen.assign(params=chosen["params"].map(params_text))
    return frame[["dataset", "method", "trial", "params", "score", "trials"]].rename(
        columns={"score": "val_score", "trials": "trials_completed"}
    )


def render_board(study: Study, board: Board, out_dir: Path, source: str) -> dict[str, Path]:
    """Write `leaderboard.md`, `leaderboard.csv`, `per_dataset.csv`, `index.html` and the CD diagram."""
    out_dir.mkdir(parents=True, exist_ok=True)
    column = study.report_column
    cap = protocol(study)
    unit = " (%)" if column.rsplit("/", 1)[-1] in PERCENT else ""
    ranks = board.ranks.copy()
    figures = []
    if board.friedman is not None:
        from lossbench.report.figures import Figure
        from lossbench.report.plots import cd_diagram

        stem = cd_diagram(board.friedman, f"{study.name}: {column}", out_dir, "cd_diagram")
        figures.append(Figure(stem, f"Critical-difference diagram of the average ranks of {column}. {cap}"))
    sections: dict[str, dict[str, str]] = {}
    for fmt in ("markdown", "html"):
        per_dataset = render_table(board.per_dataset, column, fmt, rows=("method",), cols=("dataset",), ci=True,
                                   caption=f"{column}{unit}: mean ± 95 % CI over seeds (n). {cap}")  # fmt: skip
        sections[fmt] = {
            "Leaderboard": render_frame(
                ranks,
                fmt,
                f"Average rank of {column} across datasets (1 = best), mean "
                f"score, win/tie/loss against {study.baseline} (sig_: paired t-test over seeds, "
                f"Holm p < 0.05), final runs not completed (diverged, failed or still running: left out of the "
                f"means, so a method that diverges is flagged here), training seconds per run and in "
                f"all (trials + seeds). {cap}",
            ),  # fmt: skip
            "Per-dataset results": per_dataset,
            "Paired tests against the baseline": render_frame(
                board.paired,
                fmt,
                f"{column}: each method vs "
                f"{study.baseline} per dataset, paired over seeds (t-test), Holm over the methods of a dataset.",
            ),  # fmt: skip
            "Chosen hyperparameters": render_frame(
                _chosen_frame(board.chosen),
                fmt,
                "The trial chosen per "
                f"dataset by {study.select_column} (validation only) and the parameters it set over the defaults.",
            ),  # fmt: skip
        }
        if board.friedman is not None:
            f = board.friedman
            sections[fmt]["Friedman test"] = render_frame(pd.DataFrame([{
                "datasets": f.datasets, "methods": len(f.ranks), "chi2": f.statistic, "p": f.p,
                "critical_difference": f.critical_difference}]), fmt,
                "Friedman test over the datasets where every method has results; Nemenyi CD at α = 0.05.")  # fmt: skip
    md = [
        f"# Study `{study.name}`: {column}",
        "",
        study.description.strip(),
        "",
        f"_{cap}_",
        "",
        "## Summary",
        "",
    ]
    md += [f"- {line}" for line in board.summary] + [f"- note: {n}" for n in board.notes] + [""]
    if figures:
        md += ["## Critical-difference diagram", "", f"![CD diagram]({figures[0].stem}.svg)", ""]
    for heading, body in sections["markdown"].items():
        md += [f"## {heading}", "", body, ""]
    paths = {"markdown": out_dir / "leaderboard.md", "csv": out_dir / "leaderboard.csv",
             "per_dataset_csv": out_dir / "per_dataset.csv"}  # fmt: skip
    paths["markdown"].write_text("\n".join(md))
    ranks.to_csv(paths["csv"], index=False)
    long = board.per_dataset.merge(_chosen_frame(board.chosen), on=["method", "dataset"], how="left")
    long.to_csv(paths["per_dataset_csv"], index=False)
    from lossbench.report.html import write_report

    html_sections = [("Summary", "<ul>" + "".join(f"<li>{_esc(s)}</li>" for s in board.summary) + "</ul>"),
                     *sections["html"].items()]  # fmt: skip
    paths["html"] = write_report(out_dir, f"lossbench study {study.name}", html_sections, figures,
                                 [cap, *board.notes], "<p>Every run is in the store; see lossbench status.</p>", source)  # fmt: skip
    return paths


def _esc(text: str) -> str:
    import html

    return html.escape(text)
