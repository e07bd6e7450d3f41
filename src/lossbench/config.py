"""Config groups are the registry: `configs/<group>/*.yaml` is the list of options of each group."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lossbench.groups import COMPONENT_GROUPS, GROUPS  # noqa: F401  (re-exported)
from lossbench.store.config import StoreConfig
from lossbench.train.config import TrainerConfig

CONFIG_DIR = Path(os.environ.get("LOSSBENCH_CONFIG_DIR") or Path(__file__).resolve().parents[2] / "configs")


def register_configs() -> None:
    """Put the typed schemas in Hydra's ConfigStore (`trainer/base`, `store/base`) and our resolvers."""
    cs = ConfigStore.instance()
    cs.store(group="trainer", name="base", node=TrainerConfig)
    cs.store(group="store", name="base", node=StoreConfig)
    # ${lb.epoch_at:${trainer.epochs},0.8} -> the epoch 80 % of the way through training
    OmegaConf.register_new_resolver("lb.epoch_at", lambda epochs, frac: int(epochs * frac), replace=True)


register_configs()


def options(group: str) -> list[str]:
    """The options of a config group, e.g. `options("loss") == ["balanced_softmax", "ce", ...]`."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def describe(group: str, name: str) -> str:
    """The one-line description of an option: the first comment line of its YAML."""
    for line in (CONFIG_DIR / group / f"{name}.yaml").read_text().splitlines():
        if line.startswith("#") and not line.startswith("# @package"):
            return line.lstrip("# ").strip()
    return ""


def check_option(group: str, name: str) -> None:
    """Raise `ValueError` naming the valid options if `name` is not an option of `group`."""
    valid = options(group)
    if name not in valid:
        raise ValueError(f"unknown {group} {name!r}; valid options: {', '.join(valid)}")


@contextmanager
def _hydra_context() -> Iterator[None]:
    if GlobalHydra.instance().is_initialized():  # inside a running Hydra app
        yield
        return
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="lossbench"):
        yield


def config_groups() -> set[str]:
    """Every config group on Hydra's search path (user config dirs included), internal ones too."""
    with _hydra_context():
        return set(GlobalHydra.instance().config_loader().list_groups(""))


def compose(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The full run config with Hydra `overrides`, exactly as `lossbench run` would compose it."""
    with _hydra_context():
        return hydra_compose("config", overrides=list(overrides))


def instantiate_option(group: str, name: str, **params: Any) -> Any:
    """Build option `name` of `group` from its YAML, with `params` overriding its YAML values.

    Unknown names and parameters raise `ValueError` listing the valid ones.
    """
    check_option(group, name)
    node = compose([f"{group}={name}"])[group]
    known = [k for k in node if not str(k).startswith("_")]
    for key, value in params.items():
        if key not in known:
            raise ValueError(
                f"{group} {name!r} has no parameter {key!r}; its parameters: {', '.join(known) or 'none'}"
            )
        node[key] = value
    return instantiate(node, _convert_="all")


def compose_with_hydra(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Like `compose`, with the `hydra` node (launcher, sweeper params, mode) included."""
    with _hydra_context():
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=True)
