"""What the command line needs to know about a grid whose cells may run in other processes.

Hydra's in-process launcher (`basic`) runs every cell in `lossbench run`'s own process, which then
counts the outcomes itself. The joblib launcher runs cells in worker processes and submitit in jobs,
so their outcomes are read back from the store, where every cell records itself.
"""

from __future__ import annotations

from collections.abc import Sequence


def runs_in_process(args: Sequence[str]) -> bool:
    """Whether `lossbench run args` runs its cells in this process (Hydra's basic launcher)."""
    from lossbench.config import compose_with_hydra

    fixed = [a for a in args if a not in ("-m", "--multirun") and "," not in a.split("=", 1)[-1]]
    return str(compose_with_hydra(fixed).hydra.launcher._target_).endswith("BasicLauncher")


def grid_outcomes(cells: Sequence[tuple[str, str]]) -> list[str]:
    """The stored status of each (store URL, run id) cell; `not recorded` for a cell the store lacks."""
    from lossbench.store.db import Store, StoreError

    found: dict[tuple[str, str], str] = {}
    for url in sorted({u for u, _ in cells}):
        ids = [r for u, r in cells if u == url]
        try:
            found.update({(url, r): s for r, s in Store.reader(url).statuses(ids).items()})
        except StoreError:  # never created: no cell got as far as recording itself
            pass
    return [found.get(cell, "not recorded") for cell in cells]
