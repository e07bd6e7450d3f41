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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


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

    def __init__(self) -> None:
        from hydra._internal.core_plugins.basic_launcher import BasicLauncher

        self.inner = BasicLauncher()

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Hydra's basic launcher's setup, its config loader handing out the preflight's configs first."""
        reusing = HydraContext(
            config_loader=_Reusing(hydra_context.config_loader), callbacks=hydra_context.callbacks
        )
        self.inner.setup(hydra_context=reusing, task_function=task_function, config=config)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Run the cells one after the other here, each in its own job directory (Hydra's basic launch)."""
        return self.inner.launch(job_overrides, initial_job_idx)


class _Reusing:
    """Hydra's config loader, except that a cell's config is the preflight's when it kept one."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        from lossbench.sweep import take_composed

        cfg = take_composed(master_config, sweep_overrides)
        return cfg if cfg is not None else self.loader.load_sweep_config(master_config, sweep_overrides)


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
