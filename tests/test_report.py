import subprocess
import sys
from datetime import UTC, datetime

import pandas as pd
import pytest

from lossbench.report.load import load_runs
from lossbench.report.tables import render_table, summarize
from lossbench.store.db import Store
from lossbench.store.record import RunRecord


def fill(url, values):
    """values: {(dataset, loss, weighting): [acc per seed]} -> completed runs in the store."""
    store = Store(url)
    for (dataset, loss, weighting), accs in values.items():
        for seed, acc in enumerate(accs):
            labels = {"dataset": dataset, "loss": loss, "weighting": weighting, "model": "mlp"}
            rec = RunRecord(run_id=f"{dataset}-{loss}-{weighting}-{seed}", variant=f"{dataset}-{loss}-{weighting}",
                            labels=labels, seed=seed,
                            config={}, started_at=datetime.now(UTC))  # fmt: skip
            store.claim(rec)
            store.finish(rec.run_id, "completed", metrics={"last/test/acc": acc, "last/test/nll": 1 - acc})
    return store


VALUES = {
    ("digits", "ce", "none"): [0.80, 0.82, 0.84],
    ("digits", "focal", "none"): [0.90, 0.92, 0.94],
    ("synthetic", "ce", "none"): [0.70, 0.70, 0.70],
    ("synthetic", "focal", "none"): [0.60, 0.66],
}


def test_summary_agrees_with_direct_pandas(tmp_path):
    url = f"sqlite:///{tmp_path}/r.db"
    fill(url, VALUES)
    frame = load_runs(url)
    summary = summarize(frame, "last/test/acc").set_index(["loss", "weighting", "dataset"])
    for (dataset, loss, weighting), accs in VALUES.items():
        row = summary.loc[(loss, weighting, dataset)]
        assert row["mean"] == pytest.approx(pd.Series(accs).mean())
        assert row["std"] == pytest.approx(pd.Series(accs).std())
        assert row["n"] == len(accs)


def test_markdown_bolds_best_and_shows_seed_count(tmp_path):
    url = f"sqlite:///{tmp_path}/r.db"
    fill(url, VALUES)
    table = render_table(summarize(load_runs(url), "last/test/acc"), "test/acc")
    assert "**92.00 ± 2.00** (3)" in table  # digits: focal best
    assert "**70.00 ± 0.00** (3)" in table  # synthetic: ce best
    assert "63.00 ± 4.24 (2)" in table
    nll = render_table(summarize(load_runs(url), "last/test/nll"), "test/nll")
    assert "**0.0800 ± 0.0200** (3)" in nll  # lower is better


def test_csv_has_one_row_per_method(tmp_path):
    url = f"sqlite:///{tmp_path}/r.db"
    fill(url, VALUES)
    csv = render_table(summarize(load_runs(url), "last/test/acc"), "test/acc", fmt="csv")
    lines = csv.strip().splitlines()
    assert (
        lines[0] == "loss,weighting,digits_mean,digits_std,digits_n,synthetic_mean,synthetic_std,synthetic_n"
    )
    assert len(lines) == 3


@pytest.mark.parametrize("fmt", ["markdown", "csv"])
def test_a_row_label_some_runs_lack_keeps_their_row(fmt):
    # `--rows loss,weighting,weighting.smooth`: weighting=none has no `smooth`; its row must not vanish
    runs = pd.DataFrame({"loss": ["l1"] * 4, "weighting": ["none", "none", "lds", "lds"],
                         "weighting.smooth": [None, None, True, True], "dataset": ["servo"] * 4,
                         "last/test/mae": [0.5, 0.7, 0.4, 0.6]})  # fmt: skip
    rows = ("loss", "weighting", "weighting.smooth")
    table = render_table(summarize(runs, "last/test/mae", rows), "test/mae", fmt=fmt, rows=rows)
    body = [line for line in table.strip().splitlines() if "none" in line or "lds" in line]
    assert len(body) == 2 and any("none" in line and "–" in line for line in body), table


def test_unknown_metric_lists_available(tmp_path):
    url = f"sqlite:///{tmp_path}/r.db"
    fill(url, VALUES)
    with pytest.raises(ValueError, match="available: .*last/test/acc"):
        summarize(load_runs(url), "last/test/nope")


def test_report_package_never_imports_torch():
    modules = ["load", "tables", "formats", "stats", "plots", "figures", "html", "targets", "command"]
    imports = ", ".join(f"lossbench.report.{m}" for m in modules)
    code = f"import sys, {imports}, lossbench.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pooled_cells_are_detected(tmp_path):
    from lossbench.report.tables import pooled_cells

    url = f"sqlite:///{tmp_path}/r.db"
    fill(url, VALUES)
    frame = load_runs(url)
    assert pooled_cells(frame, ["loss", "weighting"], ["dataset"]) == []
    frame.loc[0, "variant"] = "other"
    assert pooled_cells(frame, ["loss", "weighting"], ["dataset"]) == ["ce / none / digits"]
