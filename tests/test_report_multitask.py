"""Δp and the multi-task summary on hand-written run frames (pandas only)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lossbench.report.multitask import delta_p, multitask_summary, subtask_columns

L, R, MAE = "last/test/left/acc", "last/test/right/acc", "last/test/rings/mae"


def frame(rows):
    base = {"dataset": "multi_fashion", "loss": "ce", "weighting": "none"}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_delta_p_against_single_task_baselines_by_hand():
    runs = frame([
        {"task_weighting": "equal", "seed": 0, L: 0.50, R: 0.40},  # single-task baselines below
        {"task_weighting": "equal", "seed": 0, L: 0.50},
        {"task_weighting": "equal", "seed": 1, L: 0.70},  # baseline mean 0.60
        {"task_weighting": "equal", "seed": 0, R: 0.50},
        {"task_weighting": "mgda", "seed": 0, L: 0.66, R: 0.45},
    ])  # fmt: skip
    dp, notes = delta_p(runs, "last")
    # equal: ((0.5 - 0.6) / 0.6 + (0.4 - 0.5) / 0.5) / 2 = (-1/6 - 1/5) / 2
    assert dp[0] == pytest.approx(100 * (-1 / 6 - 1 / 5) / 2)
    assert dp[4] == pytest.approx(100 * (0.06 / 0.6 - 0.05 / 0.5) / 2)
    assert all(math.isnan(dp[i]) for i in (1, 2, 3)) and notes == []


def test_delta_p_lower_is_better_flips_the_sign():
    runs = frame([{"seed": 0, L: 0.5, MAE: 2.0}, {"seed": 0, L: 0.5}, {"seed": 0, MAE: 2.5}])
    dp, _ = delta_p(runs, "last")
    assert dp[0] == pytest.approx(100 * (0 + 0.5 / 2.5) / 2)  # MAE 2.0 vs 2.5: 20 % better
    assert subtask_columns(runs, "last") == {"left": L, "rings": MAE}


def test_missing_baselines_leave_delta_p_empty_and_say_how_to_add_them():
    runs = frame([{"seed": 0, L: 0.5, R: 0.4}, {"seed": 0, L: 0.6}])
    dp, notes = delta_p(runs, "last")
    assert math.isnan(dp[0])
    assert len(notes) == 1 and "'right'" in notes[0] and "dataset.tasks=[right]" in notes[0]


def test_summary_has_per_task_columns_delta_p_and_ranks():
    runs = frame([
        {"task_weighting": "equal", "seed": 0, L: 0.5, R: 0.4}, {"task_weighting": "equal", "seed": 1, L: 0.7, R: 0.6},
        {"task_weighting": "mgda", "seed": 0, L: 0.8, R: 0.7}, {"task_weighting": "mgda", "seed": 1, L: 0.8, R: 0.7},
        {"task_weighting": "equal", "seed": 0, L: 0.6}, {"task_weighting": "equal", "seed": 0, R: 0.5},
    ])  # fmt: skip
    table, notes = multitask_summary(runs, "last", ["task_weighting"])
    table = table.set_index("task_weighting")
    assert table.loc["equal", "left"] == "60.00 ± 14.14" and table.loc["mgda", "right"] == "70.00 ± 0.00"
    assert table.loc["mgda", "rank"] == 1 and table.loc["equal", "rank"] == 2
    assert table.loc["mgda", "Δp (%)"].startswith("36.67")  # (0.2/0.6 + 0.2/0.5) / 2
    assert notes == []


def test_report_command_prints_the_multitask_section_and_draws_the_tradeoff(tmp_path):
    from datetime import UTC, datetime

    from lossbench.store.db import Store
    from lossbench.store.record import RunRecord
    from tests.conftest import lossbench

    url = f"sqlite:///{tmp_path}/r.db"
    store = Store(url)
    cells = {
        ("equal", (0.5, 0.4)),
        ("mgda", (0.6, 0.5)),
        ("stl_left", (0.55, None)),
        ("stl_right", (None, 0.45)),
    }
    for name, (left, right) in sorted(cells):
        for seed in range(2):
            labels = {"dataset": "multi_fashion", "loss": "ce", "weighting": "none", "model": "multi_lenet",
                      "task_weighting": "equal" if name.startswith("stl") else name}  # fmt: skip
            metrics = {"last/test/acc": (left or 0) + seed / 100}
            if left is not None:
                metrics[L] = left + seed / 100
            if right is not None:
                metrics[R] = right + seed / 100
            rec = RunRecord(run_id=f"{name}-{seed}", variant=name, labels=labels, seed=seed, config={},
                            started_at=datetime.now(UTC))  # fmt: skip
            store.claim(rec)
            store.finish(rec.run_id, "completed", metrics=metrics)
    out = lossbench("report", "--store", url)
    assert out.returncode == 0, out.stderr
    assert "Δp (%)" in out.stdout and "left" in out.stdout and "right" in out.stdout
    dp = lossbench(
        "report",
        "--store",
        url,
        "--metric",
        "test/delta_p",
        "--rows",
        "task_weighting",
        "--baseline",
        "equal",
    )
    assert dp.returncode == 0, dp.stderr
    # mgda, seed s: 100 ((0.60 + s/100 - 0.555) / 0.555 + (0.50 + s/100 - 0.455) / 0.455) / 2 -> 9.00, 11.00
    assert "**9.9990 ± 1.4141** (2)" in dp.stdout and "| multi_fashion | mgda" in dp.stdout
    html = lossbench("report", "--store", url, "--format", "html", "--out", str(tmp_path / "rep"))
    assert html.returncode == 0, html.stderr
    assert (tmp_path / "rep" / "tradeoff_multi_fashion.png").is_file()
