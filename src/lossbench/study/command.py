"""`lossbench study [study=NAME] [--dry-run] [--store URL] [--out DIR] [--workers N]`: tune, run, rank, report.

Phase 1 runs every method's tuning trials on every dataset; phase 2 chooses each method's trial per
dataset on validation data and runs it with the study's seeds; then the leaderboard is written.
Both phases are ordinary runs in the store, so running the command again resumes where it stopped.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lossbench.study.plan import Planner
    from lossbench.study.spec import Study


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `lossbench study`."""
    parser.add_argument("spec", nargs="*", metavar="study=NAME",
                        help="the study config configs/study/NAME.yaml (default: study=default)")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true",
                        help="print the number of runs and the estimated time (from similar runs in the store, "
                             "else a short calibration run per dataset); trains nothing into the store")  # fmt: skip
    parser.add_argument(
        "--store", help="SQLAlchemy URL (default: the configured sqlite:///results/lossbench.db)"
    )
    parser.add_argument("--out", help="folder of the leaderboard (default: results/study/NAME)")
    parser.add_argument("--workers", type=_workers, default=1, metavar="N",
                        help="worker processes sharing the runs through the store's claims (default 1; 'auto' = "
                             "one per CPU core; each uses the study's `threads`)")  # fmt: skip


def _workers(text: str) -> int:
    """`--workers N` (N >= 1) or `auto` (the number of CPU cores)."""
    import os

    if text == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or 'auto', got {text!r}")
    return int(text)


def _fail(message: str, code: int = 2) -> None:
    print(f"lossbench: {message}", file=sys.stderr)
    raise SystemExit(code)


def study_name(spec: list[str]) -> str:
    """NAME from `["study=NAME"]` (default `default`)."""
    if not spec:
        return "default"
    if len(spec) > 1 or not spec[0].startswith("study=") or not spec[0].split("=", 1)[1]:
        _fail(f"unexpected argument(s) {' '.join(spec)}; usage: lossbench study [study=NAME] [--dry-run]")
    return spec[0].split("=", 1)[1]


def main(ns: argparse.Namespace, url: str) -> None:
    """Run `lossbench study` with parsed arguments `ns` on the store at `url`."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from lossbench.config import options
    from lossbench.study.spec import check_options, load_study

    try:
        study = load_study(study_name(ns.spec))
        check_options(study, {g: options(g) for g in ("dataset", "model", "trainer", "loss", "weighting",
                                                       "sampler", "stage2")})  # fmt: skip
        if ns.dry_run:
            dry_run(study, url, ns.workers)
            return
        outcome = run_study(study, url, Path(ns.out or f"results/study/{study.name}"), ns.workers)
    except ValueError as exc:
        _fail(str(exc))
    except (HydraException, OmegaConfBaseException) as exc:  # a bad override in the study's `overrides`
        from lossbench.cli import _one_line

        _fail(f"study {study_name(ns.spec)!r}: {_one_line(exc)}")
    except KeyboardInterrupt:
        _stop("interrupted", "interrupted (Ctrl-C); rerun the same command to resume", 130)
    except BaseException as exc:
        from lossbench import run

        if not isinstance(exc, run.Stop):
            raise
        _stop(exc.status, exc.message, exc.code)
    if outcome["failed"]:
        _fail(f"{outcome['failed']} run(s) failed; errors: lossbench status --store {url}", code=1)


def _stop(status: str, message: str, code: int) -> None:
    """Mark the runs this process holds as `status` (as `lossbench run` does) and exit in one line."""
    from lossbench import run

    run.release_all(status, message)
    _fail(message, code)


def _validate(planner: Planner) -> None:
    """Compose and instantiate each method (on the first dataset) and each dataset (with the first method).

    An unknown search key, an invalid component or missing data files fail here, before any training.
    """
    study = planner.study
    for method in study.methods:
        planner.check(planner.cell(method, study.datasets[0], "trial", 0, study.trial_seed, {}))
    for dataset in study.datasets[1:]:
        planner.check(planner.cell(study.methods[0], dataset, "trial", 0, study.trial_seed, {}))


class Runner:
    """Runs the cells of a study's phases into the store and reads their results back."""

    def __init__(self, study: Study, url: str, workers: int = 1) -> None:
        from lossbench import run
        from lossbench.study.plan import Planner

        self.study, self.url, self.workers = study, url, workers
        self.planner = Planner(study, url)
        _validate(self.planner)
        first = self.planner.base(study.methods[0], study.datasets[0])[0]
        # the store object the cells write through (an in-memory one too)
        self.store = run.get_store(str(first.store.url), first.store)

    def phase(self, cells: list[Any], desc: str) -> Any:
        """Run the cells not yet completed; one row per cell with its status and metrics."""
        import pandas as pd

        from lossbench.study.execute import run_cells
        from lossbench.study.select import add_selected, fetch

        done = self.store.statuses([c.run_id for c in cells])
        todo = [c for c in cells if done.get(c.run_id) != "completed"]
        for cell in todo:  # drawn values too: every trial is valid before the first one trains
            if cell.params and cell.phase == "trial":  # a final seed reuses a trial's values: checked then
                self.planner.check(cell)
        print(f"lossbench: study {self.study.name}: {desc}: {len(cells)} runs, {len(cells) - len(todo)} already "
              "completed in the store", file=sys.stderr)  # fmt: skip
        run_cells(self.planner, todo, desc, self.study.threads, self.workers)
        meta = pd.DataFrame([{"run_id": c.run_id, "method": c.method, "dataset": c.dataset, "trial": c.trial,
                              "seed": c.seed, "params": c.params} for c in cells])  # fmt: skip
        frame = meta.merge(fetch(self.store.engine, list(meta["run_id"])), on="run_id", how="left")
        return add_selected(
            frame, self.study.select_epoch, [self.study.select_metric, self.study.report_metric]
        )

    def tune(self) -> tuple[Any, Any]:
        """Phase 1: every trial; returns (trials frame, chosen frame)."""
        from lossbench.metrics.names import higher_is_better
        from lossbench.study.select import choose

        trials = self.phase(list(self.planner.trials()), "tuning trials")
        higher = higher_is_better(self.study.select_metric)
        return trials, choose(trials, self.study.select_column, higher)

    def final(self, chosen: Any) -> Any:
        """Phase 2: the chosen trial of each (method, dataset) with every seed."""
        picks = {(r.method, r.dataset): (r.trial, r.params) for r in chosen.itertuples()}
        return self.phase(list(self.planner.finals(picks)), "chosen configurations x seeds")


def run_study(study: Study, url: str, out: Path, workers: int = 1) -> dict[str, int]:
    """Both phases (in `workers` processes), then the board; returns counts of failed and pending cells."""
    from lossbench.study.board import build_board, render_board

    started = time.perf_counter()
    runner = Runner(study, url, workers)
    trials, chosen = runner.tune()
    finals = runner.final(chosen)
    pending = len(study.methods) * len(study.datasets) - len(chosen)
    failed = int((trials["status"] == "failed").sum() + (finals["status"] == "failed").sum())
    board = build_board(study, finals, chosen, trials)
    if pending:
        board.notes.append(
            f"{pending} method x dataset pair(s) have open or no completed trials: rerun the study."
        )
    paths = render_board(study, board, out, url)
    wall = time.perf_counter() - started
    ran = int(trials["status"].notna().sum() + finals["status"].notna().sum())
    print("\n".join(board.summary))
    print(f"lossbench: study {study.name}: {ran} runs in the store, {failed} failed; wall time {wall:.1f} s; "
          f"leaderboard: {paths['markdown']} {paths['html']} {paths['csv']}", file=sys.stderr)  # fmt: skip
    return {"failed": failed, "pending": pending}


def per_run_seconds(study: Study, planner: Planner, url: str) -> tuple[dict[str, float], dict[str, str]]:
    """Estimated seconds per run for each dataset, and where each estimate comes from.

    Source 1: the median `duration_s` of completed runs in the store with the same dataset, model and
    `trainer.epochs`. Source 2 (datasets the store has none of): a calibration in an in-memory store:
    after one untimed run (it loads the data), the baseline is timed at 1 and 3 epochs, which gives a
    fixed cost per run plus a cost per epoch, extrapolated to the study's epochs. Every method is
    assumed to cost what the baseline costs.
    """
    from lossbench.study.execute import run_cells
    from lossbench.study.plan import Planner

    base = planner.base(study.methods[0], study.datasets[0])[0]
    epochs = int(base.trainer.epochs)
    found: dict[str, list[float]] = {}
    if _store_exists(url):
        from lossbench.report.load import load_runs

        frame = load_runs(url, config_keys=["trainer.epochs"])
        if not frame.empty:
            frame = frame[(frame["model"] == study.model) & (frame["trainer.epochs"] == epochs)]
            for dataset, part in frame.groupby("dataset"):
                found[str(dataset)] = list(part["duration_s"].dropna())
    estimate, source = {}, {}
    baseline = next(m for m in study.methods if m.name == study.baseline)
    calibrate = Planner(study, "sqlite://")
    for dataset in study.datasets:
        if found.get(dataset):
            estimate[dataset] = statistics.median(found[dataset])
            source[dataset] = f"store median of {len(found[dataset])} runs"
            continue
        cells = [calibrate.cell(baseline, dataset, "trial", 0, seed, {"trainer.epochs": e})
                 for seed, e in ((0, 1), (1, 1), (2, 3))]  # fmt: skip
        run_cells(calibrate, cells[:1], f"calibrating {dataset}", study.threads)  # loads the data: not timed
        spent = []
        for cell in cells[1:]:
            t0 = time.perf_counter()
            run_cells(calibrate, [cell], f"calibrating {dataset}", study.threads)
            spent.append(time.perf_counter() - t0)
        per_epoch = max(0.0, (spent[1] - spent[0]) / 2)
        estimate[dataset] = spent[0] - per_epoch + per_epoch * epochs
        source[dataset] = f"calibration: {spent[0] - per_epoch:.2f} s + {per_epoch:.3f} s/epoch"
    return estimate, source


def _store_exists(url: str) -> bool:
    """False for a SQLite file that is not there (a dry run must not create the store)."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return bool(parsed.database) and parsed.database != ":memory:" and Path(parsed.database).is_file()
    return True


def dry_run(study: Study, url: str, workers: int = 1) -> None:
    """Print the number of runs and the estimated time."""
    from lossbench.study.plan import Planner

    planner = Planner(study, url)
    _validate(planner)
    counts = study.count()
    per_run, source = per_run_seconds(study, planner, url)
    per_dataset = {
        d: per_run[d] * (study.trials + len(study.seeds)) * len(study.methods) for d in study.datasets
    }
    total = sum(per_dataset.values())
    print(f"study {study.name}: {len(study.methods)} methods x {len(study.datasets)} datasets; "
          f"{study.trials} trials + {len(study.seeds)} seeds per pair")  # fmt: skip
    print(
        f"runs: {counts['trials']} tuning trials + {counts['final']} final = {counts['trials'] + counts['final']}"
    )
    print(f"estimated time: {total / 3600:.2f} h ({total:.0f} s) run one after another in this process")
    if workers > 1:
        print(f"with --workers {workers}: about {total / workers / 3600:.2f} h if the cores are free "
              "(runs split evenly; memory bandwidth and a busy machine make it slower)")  # fmt: skip
    for d in study.datasets:
        print(f"  {d:<22} {per_run[d]:7.2f} s/run  {per_dataset[d] / 60:8.1f} min  ({source[d]})")
    print("assumes every method costs what the baseline costs per run (BENCHMARKS.md has the loss/weighting "
          "cost ratios)")  # fmt: skip
