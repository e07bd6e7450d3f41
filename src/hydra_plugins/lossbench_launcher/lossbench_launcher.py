"""lossbench's Hydra sweeper and launcher: Hydra's basic ones, without composing each cell three times.

Hydra composes every cell of a grid twice: its basic sweeper composes the whole batch to check it
(`validate_batch_is_legal`), then its basic launcher composes each cell again to run it. `lossbench
run` has already composed and checked every cell in its preflight (`cli.preflight`), so on a grid of
small models those two extra composes (~0.07 s each) were over half of the wall time.

* `LossbenchSweeper` is Hydra's basic sweeper, except that it does not re-check cells the preflight
  composed (a cell it did not compose is checked as before).
* `LossbenchLauncher` is Hydra's basic launcher (every cell in this process, one after the other, the
  same job directories, `.hydra/` files and logs), except that it takes a cell's config from the
  preflight when the preflight kept one composed with the same Hydra overrides
  (`lossbench.sweep.take_composed`); otherwise it composes the cell as Hydra does.

Both wrap Hydra's own classes instead of subclassing them: Hydra's plugin scan re-executes
`hydra._internal.core_plugins`, which would leave a subclass pointing at a stale base class.
Plugins must live in the `hydra_plugins` namespace; `lossbench.config` registers these with Hydra
(`Plugins.register`), which an editable install needs (Hydra's scan does not see editable paths).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


class LossbenchSweeper(Sweeper):
    """Hydra's basic sweeper that skips re-checking cells `lossbench run`'s preflight composed."""

    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None) -> None:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

        self.inner = BasicSweeper(max_batch_size=max_batch_size, params=params)
        check = self.inner.validate_batch_is_legal

        def validate_batch_is_legal(batch: Sequence[Sequence[str]]) -> None:
            from lossbench.sweep import PREFLIGHT

            unchecked = [o for o in batch if tuple(o) not in PREFLIGHT.checked]
            if unchecked:
                check(unchecked)

        self.inner.validate_batch_is_legal = validate_batch_is_legal  # type: ignore[method-assign]

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Hydra's basic sweeper's setup."""
        self.inner.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        """Hydra's basic sweep: the cross product of the swept values, in batches, to the launcher."""
        return self.inner.sweep(arguments)


class LossbenchLauncher(Launcher):
    """Hydra's basic (in-process) launcher that reuses the configs `lossbench run`'s preflight composed."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Keep the grid's (master) config, Hydra's context and the task function for `launch`."""
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Run the cells one after the other here, each in its own job directory (as Hydra's basic launcher)."""
        from hydra.core.utils import configure_log, filter_overrides, run_job, setup_globals

        from lossbench.sweep import take_composed

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(job_overrides)} jobs locally")
        runs = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            cfg = take_composed(self.config, overrides)
            if cfg is None:
                cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(cfg):
                cfg.hydra.job.id = idx
                cfg.hydra.job.num = idx
            runs.append(
                run_job(
                    hydra_context=self.hydra_context,
                    task_function=self.task_function,
                    config=cfg,
                    job_dir_key="hydra.sweep.dir",
                    job_subdir_key="hydra.sweep.subdir",
                )
            )
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return runs


@dataclass
class LossbenchLauncherConf:
    """`hydra/launcher=lossbench`: no settings."""

    _target_: str = "hydra_plugins.lossbench_launcher.lossbench_launcher.LossbenchLauncher"


@dataclass
class LossbenchSweeperConf:
    """`hydra/sweeper=lossbench`: the basic sweeper's settings (`hydra.sweeper.params` holds a config's grid)."""

    _target_: str = "hydra_plugins.lossbench_launcher.lossbench_launcher.LossbenchSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None


ConfigStore.instance().store(
    group="hydra/launcher", name="lossbench", node=LossbenchLauncherConf, provider="lossbench"
)
ConfigStore.instance().store(
    group="hydra/sweeper", name="lossbench", node=LossbenchSweeperConf, provider="lossbench"
)
