"""Run study cells through `run.run_cell`, the path every `lossbench run` cell takes, in one or more processes.

Each cell claims its run id in the store, heartbeats and writes its record like any grid cell, so an
interrupted study resumes by running it again (completed cells are skipped, stale ones taken over).
With `workers > 1` the cells are dealt round-robin to that many forked worker processes (one torch
thread each by default); the store's claims keep any cell from running twice, and the parent reads
the results from the store once every worker has finished.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Sequence

from lossbench.study.plan import Cell, Planner

# Cells queued for stacking at a time (their configs are held until their group trains).
STACK_CHUNK = 64


def run_cells(
    planner: Planner,
    cells: Sequence[Cell],
    desc: str,
    threads: int | None = None,
    workers: int = 1,
    position: int | None = None,
) -> list[str]:
    """Run `cells`; returns the outcome of each one run in this process (`completed`, `skipped`, ...).

    Cells that can train stacked do (`trainer.stack=auto`, as in a `lossbench run -m` grid).

    `threads` sets torch's intra-op threads first: the study's small models train fastest on one
    thread, and on a shared machine more threads per process mostly wait on each other. `workers`
    forks that many processes, each running every `workers`-th cell (platforms without `fork` run
    them here, one after another); their outcomes are read back from the store by the caller.
    """
    if workers > 1 and len(cells) > 1 and "fork" in multiprocessing.get_all_start_methods():
        _run_forked(planner, cells, desc, threads, workers)
        return []
    import torch
    from tqdm.auto import tqdm

    from lossbench import run

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)

    # Cells with `trainer.stack=auto` (the default) are queued, STACK_CHUNK at a time, then trained as
    # stacked groups where they share data, model and schedule: a method's trials (or final seeds) on
    # one dataset come one after another and differ only in loss/weighting values and seed
    # (`run.stack_key`). The bar counts cells as they finish.
    bar = tqdm(total=len(cells), desc=desc, unit="run", disable=None, position=position)
    run.SESSION.progress = bar
    start = len(run.SESSION.outcomes)
    try:
        for i in range(0, len(cells), STACK_CHUNK):
            run.SESSION.pending = []
            for cell in cells[i : i + STACK_CHUNK]:
                run.run_cell(*planner.materialize(cell))
            run.run_pending()
    finally:
        run.SESSION.progress, run.SESSION.pending = None, None
        bar.close()
        torch.set_num_threads(before)
    return run.SESSION.outcomes[start:]


def _run_forked(
    planner: Planner, cells: Sequence[Cell], desc: str, threads: int | None, workers: int
) -> None:
    """Deal `cells` to `workers` forked processes and wait for all of them.

    A forked worker inherits the composed configs and the loaded datasets, so it starts training at
    once. Raises `KeyboardInterrupt` if a worker was interrupted and `run.Stop` if one stopped on
    anything else (each worker has released its own claims and printed its reason first).
    """
    from lossbench import run

    sys.stdout.flush()
    sys.stderr.flush()
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(
            target=_worker,
            args=(planner, cells[k::workers], f"{desc} [worker {k + 1}/{workers}]", threads, k),
            name=f"lossbench-study-{k + 1}",
        )
        for k in range(min(workers, len(cells)))
    ]
    for proc in procs:
        proc.start()
    try:
        for proc in procs:
            proc.join()
    except BaseException:  # Ctrl-C reaches the workers too: let them release their claims, then go
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.terminate()
        raise
    codes = [proc.exitcode for proc in procs]
    if 130 in codes:
        raise KeyboardInterrupt
    bad = [c for c in codes if c]
    if bad:
        raise run.Stop(f"{len(bad)} study worker(s) stopped (exit code {bad[0]}; the reason is printed above); "
                       "rerun the same command to resume")  # fmt: skip


def _worker(planner: Planner, cells: Sequence[Cell], desc: str, threads: int | None, position: int) -> None:
    """One forked worker: fresh store connections, the cells one after another, claims released on a stop."""
    from lossbench import run

    for store in run.SESSION.stores.values():  # connections are not shared across processes
        store.engine.dispose(close=False)
    try:
        with run.stop_on_escape(planner.url):  # a store error ends this worker in one line, as it ends a grid
            run_cells(planner, cells, desc, threads, position=position)
    except KeyboardInterrupt:
        run.release_all("interrupted", "interrupted (Ctrl-C); rerun the same command to resume")
        raise SystemExit(130) from None
    except run.Stop as exc:
        run.release_all(exc.status, exc.message)
        print(f"lossbench: {exc.message}", file=sys.stderr)
        raise SystemExit(exc.code or 1) from None
