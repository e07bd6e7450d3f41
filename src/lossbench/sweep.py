"""What the command line needs to know about a grid whose cells may run in other processes.

lossbench's default launcher (`lossbench`, `hydra_plugins/lossbench_launcher`) and Hydra's `basic`
run every cell in `lossbench run`'s own process, which then counts the outcomes itself. The joblib
launcher runs cells in worker processes and submitit in jobs, so their outcomes are read back from
the store, where every cell records itself.

`PREFLIGHT` carries the preflight's composes over to lossbench's sweeper and launcher, so Hydra does
not compose each cell twice more (`take_composed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Launchers that run the cells in this process (`_target_` class names).
IN_PROCESS_LAUNCHERS = ("LossbenchLauncher", "BasicLauncher")
# At most this many composed cell configs are kept for the launcher (about 0.14 MB each, measured);
# the launcher composes any further cells itself, as Hydra would.
KEEP_AT_MOST = 2000


@dataclass
class Preflight:
    """What `cli.preflight` composed, for `LossbenchSweeper` and `LossbenchLauncher` to reuse."""

    # each composed cell's task overrides
    checked: set[tuple[str, ...]] = field(default_factory=set)
    # task overrides -> the cell's config, Hydra's node kept
    configs: dict[tuple[str, ...], Any] = field(default_factory=dict)
    # cells the launcher took from `configs` (tests read it)
    reused: int = 0
    # whether the grid's cells run in this process (lossbench's or Hydra's basic launcher)
    in_process: bool = False

    def clear(self) -> None:
        """Forget an earlier grid's (a new `lossbench run` in the same process)."""
        self.checked.clear()
        self.configs.clear()
        self.reused, self.in_process = 0, False


PREFLIGHT = Preflight()


def is_hydra_override(arg: str) -> bool:
    """Whether a command-line override sets Hydra's own config (`hydra.*`, `hydra/...`), as Hydra decides."""
    key = arg.split("=", 1)[0].lstrip("+~")
    return key.startswith(("hydra.", "hydra/"))


def take_composed(master: Any, overrides: Sequence[str]) -> Any:
    """The cell config the preflight composed for `overrides`, made the launcher's; None if it has none.

    Taken only when it was composed with the same Hydra overrides as the grid's (`master`) config;
    the job name is the app's and the resolver cache the master's, exactly as Hydra's
    `load_sweep_config` makes a cell's config. Each config is handed out once.
    """
    from omegaconf import OmegaConf, open_dict

    cfg = PREFLIGHT.configs.pop(tuple(overrides), None)
    if cfg is None or list(cfg.hydra.overrides.hydra) != list(master.hydra.overrides.hydra):
        return None
    with open_dict(cfg):
        cfg.hydra.job.name = master.hydra.job.name
    OmegaConf.copy_cache(from_config=master, to_config=cfg)
    PREFLIGHT.reused += 1
    return cfg


def runs_in_process(cfg: Any) -> bool:
    """Whether a grid composed as `cfg` (Hydra node included) runs its cells in this process."""
    return str(cfg.hydra.launcher._target_).endswith(IN_PROCESS_LAUNCHERS)


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
