"""Run study cells in this process through `run.run_cell`, the path every `lossbench run` cell takes.

Each cell claims its run id in the store, heartbeats and writes its record like any grid cell, so an
interrupted study resumes by running it again (completed cells are skipped, stale ones taken over).
"""

from __future__ import annotations

from collections.abc import Sequence

from lossbench.study.plan import Cell, Planner


def run_cells(planner: Planner, cells: Sequence[Cell], desc: str, threads: int | None = None) -> list[str]:
    """Run `cells` in order; returns each one's outcome (`completed`, `skipped`, `failed`, ...).

    `threads` sets torch's intra-op threads first: the study's small models train fastest on one
    thread, and on a shared machine more threads per process mostly wait on each other. To use more
    cores, start more `lossbench study` processes on the same store: the store's claims split the cells.
    """
    import torch
    from tqdm.auto import tqdm

    from lossbench import run

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)

    bar = tqdm(total=len(cells), desc=desc, unit="run", disable=None)
    outcomes = []
    try:
        for cell in cells:
            outcomes.append(run.run_cell(*planner.materialize(cell)))
            bar.update()
    finally:
        bar.close()
        torch.set_num_threads(before)
    return outcomes
