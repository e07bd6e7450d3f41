"""The report on regression runs: lower-is-better bold and ranks, shot-group MAE and the per-bin error plot."""

from __future__ import annotations

from datetime import UTC, datetime

from lossbench.report.load import load_runs
from lossbench.report.stats import average_ranks, score_matrix
from lossbench.report.tables import render_table, summarize
from lossbench.store.db import Store
from lossbench.store.record import RunRecord
from tests.conftest import lossbench

BIN_COUNTS = [300, 120, 40, 9, 2]


def fill(url: str) -> None:
    """Two datasets x two methods x three seeds; `l1/lds` has the lower errors everywhere."""
    store = Store(url)
    for dataset in ("abalone_rings", "cpu_performance"):
        for m, (loss, weighting) in enumerate([("mse", "none"), ("l1", "lds")]):
            for seed in range(3):
                labels = {"experiment": None, "dataset": dataset, "model": "mlp", "loss": loss,
                          "weighting": weighting, "sampler": "instance", "trainer": "regression"}  # fmt: skip
                rec = RunRecord(f"{dataset}-{loss}-{seed}", f"{dataset}-{loss}", labels, seed,
                                {"seed": seed}, {}, datetime.now(UTC))  # fmt: skip
                store.claim(rec)
                err = 1.0 - 0.3 * m + 0.01 * seed
                bins = [err * (1 + i) for i in range(len(BIN_COUNTS))]
                metrics = {"last/test/mae": err, "last/test/mse": err**2, "last/test/gm": err / 2,
                           "last/test/many_mae": bins[0], "last/test/medium_mae": bins[2],
                           "last/test/few_mae": bins[4], "last/test/pearson": 0.5 + 0.2 * m,
                           "last/test/bin_mae": bins}  # fmt: skip
                store.finish(rec.run_id, "completed", metrics=metrics, history_rows=[],
                             data_meta={"bin_counts": BIN_COUNTS})  # fmt: skip


def test_errors_are_bolded_and_ranked_lowest_first(tmp_path):
    url = f"sqlite:///{tmp_path}/r.db"
    fill(url)
    frame = load_runs(url)
    for metric in ("test/mae", "test/gm", "test/few_mae"):
        summary = summarize(frame, f"last/{metric}")
        table = render_table(summary, metric)
        best_line = next(line for line in table.splitlines() if line.startswith("| l1"))
        assert best_line.count("**") == 4, table  # both datasets bold for the lower error
    scores = score_matrix(summarize(frame, "last/test/mae"), ["loss", "weighting"])
    assert average_ranks(scores, higher_is_better=False).to_dict() == {"l1/lds": 1.0, "mse/none": 2.0}


def test_html_report_has_the_regression_figures(tmp_path):
    url = f"sqlite:///{tmp_path}/r.db"
    fill(url)
    out = tmp_path / "report"
    lossbench("report", "--store", url, "--format", "html", "--out", str(out),
              "--metric", "test/mae", "--baseline", "mse/none", check=True)  # fmt: skip
    names = {p.stem for p in out.glob("*.png")}
    assert {"per_bin_abalone_rings", "shots_mae_cpu_performance"} <= names, names
    assert (
        "error vs training density" in (out / "index.html").read_text()
        or "per label bin" in (out / "index.html").read_text()
    )
