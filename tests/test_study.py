"""`lossbench study`: study configs, deterministic trials, selection on validation only, the leaderboard."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from omegaconf import OmegaConf

from lossbench import cli, run
from lossbench.config import CONFIG_DIR, compose, options
from lossbench.data.spec import Split
from lossbench.store.record import run_id_of
from lossbench.study.board import build_board, render_board
from lossbench.study.command import Runner
from lossbench.study.plan import Planner
from lossbench.study.select import add_selected, choose
from lossbench.study.spec import check_options, load_study, parse_study, study_names

VALID = {g: options(g) for g in ("dataset", "model", "trainer", "loss", "weighting", "sampler", "stage2")}
TINY = {  # 2 methods x 1 tiny dataset x 3 trials, 2-epoch runs
    "datasets": ["synthetic"],
    "seeds": [0, 1],
    "trials": 3,
    "trainer": "smoke",
    "threads": 1,
    "overrides": ["dataset.n_max=40", "dataset.test_per_class=20", "dataset.val_per_class=10"],
    "space": {"trainer.lr": {"log_uniform": [0.01, 0.5]}},
    "methods": {"ce": {}, "focal": {"loss": "focal", "space": {"loss.gamma": {"uniform": [0.5, 5.0]}}}},
}


@pytest.mark.parametrize("name", study_names())
def test_every_study_parses_and_every_method_composes(name):
    study = load_study(name)
    check_options(study, VALID)
    planner = Planner(study, "sqlite://")
    for method in study.methods:  # an unknown search key raises here
        planner.base(method, study.datasets[0])
    assert study.baseline in [m.name for m in study.methods]


def test_default_study_is_the_size_the_issue_asks_for():
    study = load_study("default")
    counts = study.count()
    assert len(study.methods) >= 25 and len(study.datasets) >= 15 and len(study.seeds) >= 5
    assert counts["trials"] + counts["final"] >= 10_000
    ce = next(m for m in study.methods if m.name == "ce")
    assert {"trainer.lr", "trainer.weight_decay"} <= set(ce.space)  # the baseline tunes like everyone


def test_trials_are_deterministic_in_range_and_trial_zero_is_the_defaults():
    study = load_study("default")
    focal = next(m for m in study.methods if m.name == "cb_focal")
    assert study.draw(focal, "digits", 0) == {}
    draws = [study.draw(focal, "digits", t) for t in range(1, 40)]
    assert draws == [study.draw(focal, "digits", t) for t in range(1, 40)]  # a rerun regenerates them
    assert draws[0] != study.draw(focal, "ecoli", 1)  # each dataset gets its own draws
    assert len({d["loss.gamma"] for d in draws}) > 30
    for d in draws:
        assert 0.5 <= d["loss.gamma"] <= 5.0 and d["weighting.beta"] in (0.9, 0.99, 0.999, 0.9999)
        assert 0.01 <= d["trainer.lr"] <= 0.5
    logs = np.log10([d["trainer.weight_decay"] for d in draws])
    assert logs.min() < -3.5 and logs.max() > -3.0  # log-uniform over [1e-5, 5e-3]: both decades reached


def test_a_cell_has_the_run_id_lossbench_run_gives_its_overrides():
    study = parse_study("tiny", TINY)
    planner = Planner(study, "sqlite://")
    focal = study.methods[1]
    cell = planner.cell(focal, "synthetic", "trial", 2, 100, study.draw(focal, "synthetic", 2))
    defaults = planner.cell(focal, "synthetic", "final", 0, 3, {})  # planned after it: nothing leaks over
    assert "loss.gamma" in cell.params
    for c in (cell, defaults):
        by_hand = compose([*c.overrides, "store.url=sqlite://"])
        assert run_id_of(OmegaConf.to_container(by_hand, resolve=True)) == c.run_id
    cfg, _ = planner.materialize(cell)
    assert cfg.loss.gamma == cell.params["loss.gamma"] and cfg.seed == 100


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"trial_seed": 0}, "fresh runs"),
        ({"baseline": "nope"}, "not a method"),
        ({"selection": {"metric": "test/acc"}}, "validation metric"),
        ({"methods": {"ce": {"space": {"loss.gamma": {"uniform": [2, 1]}}}}}, "lo <= hi"),
        ({"methods": {"ce": {"sampler_typo": "x"}}}, "unknown field"),
        ({"tirals": 3}, "unknown field"),
    ],
)
def test_bad_study_fields_fail_with_the_reason(change, message):
    with pytest.raises(ValueError, match=message):
        parse_study("bad", {**TINY, **change})


def test_a_search_key_the_config_lacks_fails_before_training():
    study = parse_study("bad", {**TINY, "methods": {"ce": {"space": {"loss.gamma": {"uniform": [1, 2]}}}}})
    with pytest.raises(ValueError, match="does not have"):
        Planner(study, "sqlite://").base(study.methods[0], "synthetic")


def test_unknown_study_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["study", "study=nope"])
    err = capsys.readouterr().err
    assert (
        exc.value.code == 2
        and err.startswith("lossbench: unknown study 'nope'; valid:")
        and "Traceback" not in err
    )


def test_choose_reads_validation_only_and_waits_for_open_trials():
    trials = pd.DataFrame({
        "method": ["a"] * 3 + ["b"] * 2 + ["c"] * 2, "dataset": "d", "trial": [0, 1, 2, 0, 1, 0, 1],
        "params": [{}, {"x": 1}, {"x": 2}, {}, {}, {}, {}],
        "status": ["completed", "completed", "diverged", "completed", "running", "completed", "completed"],
        "selected/val/acc": [0.5, 0.7, np.nan, 0.9, np.nan, 0.6, 0.6],
        "selected/test/acc": [0.99, 0.1, 0.5, 0.2, 0.3, 0.1, 0.9],
    })  # fmt: skip
    chosen = choose(trials, "selected/val/acc").set_index("method")
    assert chosen.loc["a", "trial"] == 1 and chosen.loc["a", "params"] == {"x": 1}  # not test's favourite 0
    assert "b" not in chosen.index  # a trial still running: its seeds wait
    assert chosen.loc["c", "trial"] == 0  # a tie goes to the lower trial, whatever test says
    with pytest.raises(ValueError, match="validation"):
        choose(trials, "selected/test/acc")


def test_posthoc_stage2_runs_are_scored_on_their_adjusted_final_model():
    frame = pd.DataFrame({"best/val/acc": [0.5, np.nan], "last/val/acc": [0.4, 0.8]})
    assert add_selected(frame, "best", ["val/acc"])["selected/val/acc"].tolist() == [0.5, 0.8]


def _with_permuted_test_labels(monkeypatch):
    load = run.load_data

    def corrupted(cfg, dataset):
        spec = load(cfg, dataset)
        y = spec.test.y[torch.randperm(len(spec.test.y), generator=torch.Generator().manual_seed(0))]
        return dataclasses.replace(spec, test=Split(spec.test.x, (y + 1) % spec.num_classes))

    monkeypatch.setattr(run, "load_data", corrupted)


def test_no_test_metric_influences_the_selection(tmp_path, monkeypatch):
    study = parse_study("tiny", TINY)
    clean_trials, clean = Runner(study, f"sqlite:///{tmp_path}/clean.db").tune()
    _with_permuted_test_labels(monkeypatch)
    bad_trials, corrupted = Runner(study, f"sqlite:///{tmp_path}/corrupted.db").tune()
    # the corruption reached the test metrics (and nothing else) ...
    assert not np.allclose(clean_trials["last/test/acc"], bad_trials["last/test/acc"])
    assert np.allclose(clean_trials["last/val/acc"], bad_trials["last/val/acc"])
    # ... and the same hyperparameters are chosen
    pd.testing.assert_frame_equal(clean, corrupted)
    assert len(clean) == 2 and set(clean["trial"]) <= {0, 1, 2}


def _finals(rng, shift):
    rows = []
    for d in range(5):
        for seed in range(3):
            base = 0.6 + 0.05 * d + rng.normal(0, 0.002)
            for method, delta in shift.items():
                rows.append({"method": method, "dataset": f"d{d}", "seed": seed, "status": "completed",
                             "train_time_s": 1.0, "selected/test/balanced_acc": base + delta})  # fmt: skip
    return pd.DataFrame(rows)


def test_board_counts_wins_and_significance(tmp_path):
    study = parse_study(
        "tiny", {**TINY, "methods": {"ce": {}, "focal": {"loss": "focal"}, "mae": {"loss": "mae"}}}
    )
    finals = _finals(np.random.default_rng(0), {"ce": 0.0, "focal": 0.05, "mae": -0.2})
    finals["selected/test/balanced_acc"] += np.random.default_rng(1).normal(0, 0.001, len(finals))
    extra = finals.iloc[[0]].assign(method="mae", seed=9, status="diverged")  # left out of the means, counted
    finals = pd.concat([finals, extra], ignore_index=True)
    chosen = pd.DataFrame([{"method": m, "dataset": f"d{d}", "trial": 0, "params": {}, "score": 0.5, "trials": 3}
                           for m in ("ce", "focal", "mae") for d in range(5)])  # fmt: skip
    board = build_board(study, finals, chosen, finals.iloc[:0])
    ranks = board.ranks.set_index("method")
    assert list(board.ranks["method"]) == ["focal", "ce", "mae"]
    assert ranks.loc["focal", "wins"] == 5 and ranks.loc["focal", "sig_wins"] == 5
    assert ranks.loc["mae", "losses"] == 5 and ranks.loc["mae", "sig_losses"] == 5
    assert ranks.loc["mae", "not_completed"] == 1 and ranks.loc["focal", "not_completed"] == 0
    assert any("1 final run(s) diverged" in n for n in board.notes)
    assert pd.isna(ranks.loc["ce", "wins"])  # the baseline is not compared with itself
    assert "focal beats ce on 5 of 5 datasets (significant on 5)" in " ".join(board.summary)
    assert board.friedman is not None and math.isclose(board.friedman.ranks["focal"], 1.0)
    paths = render_board(study, board, tmp_path, "sqlite://")
    text = paths["markdown"].read_text()
    assert "Protocol (DomainBed-style" in text and "cd_diagram.svg" in text
    assert (tmp_path / "cd_diagram.png").is_file() and "focal" in paths["csv"].read_text()


def test_quick_study_end_to_end_resumes_and_reports(tmp_path, capsys):
    db = tmp_path / "quick.db"
    url, out = f"sqlite:///{db}", tmp_path / "board"
    cli.main(["study", "study=quick", "--dry-run", "--store", url])
    assert "runs: 24 tuning trials + 24 final = 48" in capsys.readouterr().out
    assert not db.exists()  # a dry run never creates the store
    cli.main(["study", "study=quick", "--store", url, "--out", str(out)])
    first = capsys.readouterr()
    assert "Friedman test over 3 datasets x 4 methods" in first.out
    text = (out / "leaderboard.md").read_text()
    for section in ("## Leaderboard", "## Per-dataset results", "## Chosen hyperparameters", "## Summary"):
        assert section in text
    for dataset in ("digits", "ecoli", "newthyroid"):
        assert f"| {dataset}" in text
    assert (out / "cd_diagram.svg").is_file() and (out / "index.html").is_file()
    assert "average_rank" in (out / "leaderboard.csv").read_text().splitlines()[0]
    cli.main(["study", "study=quick", "--store", url, "--out", str(out)])  # resumes: nothing left to run
    again = capsys.readouterr().err
    assert "tuning trials: 24 runs, 24 already completed" in again
    assert "seeds: 24 runs, 24 already completed" in again
    cli.main(["study", "study=quick", "--dry-run", "--store", url])
    assert "store median of" in capsys.readouterr().out


def test_an_invalid_drawn_value_fails_before_any_run(tmp_path, capsys):
    bad = {
        **TINY,
        "methods": {
            "ce": {},
            "poly1": {"loss": "poly1", "space": {"loss.epsilon": {"uniform": [-5.0, -2.0]}}},
        },
    }
    runner = Runner(parse_study("tiny", bad), f"sqlite:///{tmp_path}/s.db")  # trial 0 (the defaults) is valid
    with pytest.raises(ValueError, match="invalid run .*loss.epsilon="):
        runner.tune()
    assert runner.store.counts()["completed"] == 0


@pytest.mark.slow
def test_every_default_study_method_trains_and_is_scored(tmp_path):
    raw = yaml.safe_load((CONFIG_DIR / "study" / "default.yaml").read_text())
    study = parse_study(
        "all_methods", {**raw, "datasets": ["newthyroid"], "trials": 2, "overrides": ["trainer.epochs=2"]}
    )
    trials, chosen = Runner(study, f"sqlite:///{tmp_path}/s.db").tune()
    assert (trials["status"] == "completed").all(), trials.loc[
        trials["status"] != "completed", "method"
    ].tolist()
    assert trials[study.select_column].notna().all() and len(chosen) == len(study.methods)


def test_a_bad_override_in_a_study_is_one_line(tmp_path, monkeypatch, capsys):
    raw = yaml.safe_load((CONFIG_DIR / "study" / "quick.yaml").read_text())
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump({**raw, "overrides": ["trainer.epochz=3"]}))
    monkeypatch.setattr("lossbench.study.spec.study_dir", lambda: tmp_path)
    with pytest.raises(SystemExit) as exc:
        cli.main(["study", "study=typo", "--dry-run", "--store", f"sqlite:///{tmp_path}/s.db"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith(
        "lossbench: study 'typo': Could not override 'trainer.epochz'"
    )
    assert "Traceback" not in err and not (tmp_path / "s.db").exists()


def test_a_regression_study_chooses_and_ranks_the_lowest_error(tmp_path):
    raw = yaml.safe_load((CONFIG_DIR / "study" / "regression.yaml").read_text())
    study = parse_study(
        "regression_tiny",
        {**raw, "datasets": ["synthetic_regression"], "trials": 3, "seeds": [0, 1],
         "methods": {"mse": {"loss": "mse"}, "l1": {"loss": "l1"}},
         "overrides": ["dataset.n_train=200", "dataset.n_eval=100", "trainer.epochs=3"]},
    )  # fmt: skip
    runner = Runner(study, f"sqlite:///{tmp_path}/s.db")
    trials, chosen = runner.tune()
    assert (trials["status"] == "completed").all(), trials[["method", "trial", "status", "params"]]
    for row in chosen.itertuples():  # lower validation error wins
        part = trials[(trials["method"] == row.method) & (trials["dataset"] == row.dataset)]
        assert row.score == part[study.select_column].min()
    finals = runner.final(chosen)
    board = build_board(study, finals, chosen, trials)
    means = finals.groupby("method")[study.report_column].mean()
    assert board.ranks.iloc[0]["method"] == means.idxmin()  # rank 1 = the lowest test error


def test_workers_split_the_runs_and_choose_what_one_process_chooses(tmp_path):
    import sqlalchemy as sa

    study = parse_study("tiny", TINY)
    alone = Runner(study, f"sqlite:///{tmp_path}/one.db").tune()[1]
    url = f"sqlite:///{tmp_path}/two.db"
    ran_here = len(run.SESSION.outcomes)
    trials, chosen = Runner(study, url, workers=2).tune()
    assert len(run.SESSION.outcomes) == ran_here  # every run trained in a worker process, none in this one
    assert (trials["status"] == "completed").all() and len(trials) == 6
    pd.testing.assert_frame_equal(chosen, alone)  # runs are deterministic: same scores, same choices
    with sa.create_engine(url).connect() as conn:
        attempts = conn.execute(sa.text("SELECT attempt FROM runs")).scalars().all()
    assert attempts == [1] * 6  # each run claimed and trained once


def test_a_studys_trials_and_final_seeds_train_stacked(tmp_path):
    """A study's cells stack like a grid's, their drawn `trainer.lr` values included (one per member)."""
    import json

    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path}/s.db"
    runner = Runner(parse_study("tiny", TINY), url)
    finals = runner.final(runner.tune()[1])
    assert (finals["status"] == "completed").all() and len(finals) == 4
    with sa.create_engine(url).connect() as conn:
        rows = conn.execute(sa.text("SELECT run_id, environment FROM runs")).all()
    stacked = {r: json.loads(e)["execution"]["stacked_members"] for r, e in rows}
    # the 6 trials (2 methods x 3, each its own lr) train as one group, the 4 final runs as another
    assert {stacked[r] for r in finals["run_id"]} == {4} and sorted(stacked.values()) == [4] * 4 + [6] * 6
