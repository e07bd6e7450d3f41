"""Config groups are the registry: `configs/<group>/*.yaml` is the list of options of each group."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
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


def _builtin_config_dir() -> Path:
    """The directory of the built-in options.

    In an installed wheel it is the `lossbench.configs` package (setup.py maps `configs/` there);
    running from a checkout (editable install, PYTHONPATH=src) it is that checkout's `configs/`.
    """
    if os.environ.get("LOSSBENCH_CONFIG_DIR"):
        return Path(os.environ["LOSSBENCH_CONFIG_DIR"])
    spec = importlib.util.find_spec("lossbench.configs")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "config.yaml").is_file():
            return Path(location)
    return Path(__file__).resolve().parents[2] / "configs"


CONFIG_DIR = _builtin_config_dir()
# Directories of the user's own options (`--config-dir`, `LOSSBENCH_CONFIG_PATH`, `hydra.searchpath`).
PATH_ENV = "LOSSBENCH_CONFIG_PATH"
_USER_DIRS: list[Path] = []


def register_configs() -> None:
    """Put the typed schemas in Hydra's ConfigStore (`trainer/base`, `store/base`) and our resolvers."""
    cs = ConfigStore.instance()
    cs.store(group="trainer", name="base", node=TrainerConfig)
    cs.store(group="store", name="base", node=StoreConfig)
    # ${lb.epoch_at:${trainer.epochs},0.8} -> the epoch 80 % of the way through training
    OmegaConf.register_new_resolver("lb.epoch_at", lambda epochs, frac: int(epochs * frac), replace=True)


register_configs()


def use_config_dirs(args: Sequence[str]) -> list[str]:
    """Take the user's config directories out of command-line `args`; the rest of `args`, for Hydra.

    `--config-dir DIR` (`-cd DIR`, repeatable) and `hydra.searchpath=[...]` entries join the
    directories of `LOSSBENCH_CONFIG_PATH` (os.pathsep-separated). They are *appended* to the search
    path: the built-in options are found first, and a user option with a built-in's name is refused.
    Every Hydra call of this process (`compose`, the `run` app) then sees them through one
    `hydra.searchpath` override, which is not part of the run config, so run ids do not change.
    The working directory goes on `sys.path` (last), so a `_target_: my_loss.MyLoss` beside the
    user's `configs/` imports. Raises `ValueError` for a directory that does not exist.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    rest, dirs = [], [p for p in os.environ.get(PATH_ENV, "").split(os.pathsep) if p]
    it = iter(args)
    for arg in it:
        if arg in ("--config-dir", "-cd"):
            dirs.append(next(it, ""))
        elif arg.startswith("--config-dir="):
            dirs.append(arg.split("=", 1)[1])
        elif arg.startswith("hydra.searchpath="):
            value = OverridesParser.create().parse_override(arg).value()
            dirs += [str(v) for v in (value if isinstance(value, list) else [value])]
        else:
            rest.append(arg)
    _USER_DIRS.clear()
    for entry in dirs:
        path = Path(entry.removeprefix("file://")).expanduser().resolve()
        if entry.startswith("pkg://") or not path.is_dir():
            raise ValueError(f"config directory {entry!r} does not exist; give an existing directory")
        if path != CONFIG_DIR.resolve() and path not in _USER_DIRS:
            _USER_DIRS.append(path)
    for group in GROUPS:
        clash = set(user_options(group)) & set(builtin_options(group))
        if clash:
            name = sorted(clash)[0]
            raise ValueError(
                f"{user_options(group)[name]} has the name of the built-in {group} {name!r}; rename the file"
            )
    if _USER_DIRS and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    return rest


def user_config_dirs() -> list[Path]:
    """The user's config directories in force (see `use_config_dirs`)."""
    return list(_USER_DIRS)


def searchpath_overrides() -> list[str]:
    """The `hydra.searchpath=[...]` override adding the user's config directories (none: [])."""
    if not _USER_DIRS:
        return []
    return ["hydra.searchpath=[" + ",".join(f"'file://{d}'" for d in _USER_DIRS) + "]"]


def builtin_options(group: str) -> list[str]:
    """The options lossbench ships in `group`."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def user_options(group: str) -> dict[str, Path]:
    """The user's options of `group` (name -> YAML file), from the directories in force."""
    found: dict[str, Path] = {}
    for d in _USER_DIRS:
        for p in sorted((d / group).glob("*.yaml")):
            found.setdefault(p.stem, p)
    return found


def options(group: str) -> list[str]:
    """The options of a config group, e.g. `options("loss") == ["balanced_softmax", "ce", ...]`.

    Built-in options plus the user's (see `use_config_dirs`).
    """
    return sorted({*builtin_options(group), *user_options(group)})


def option_file(group: str, name: str) -> Path:
    """The YAML file of an option (built-in or the user's)."""
    return user_options(group).get(name) or CONFIG_DIR / group / f"{name}.yaml"


def describe(group: str, name: str) -> str:
    """The one-line description of an option: the first comment line of its YAML."""
    for line in option_file(group, name).read_text().splitlines():
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


def _memoize_config_files() -> None:
    """Let Hydra read and parse each config file once per process instead of once per compose.

    Hydra builds a fresh repository cache for every compose, so a grid of N cells re-reads and
    re-parses every YAML file about 2N times (the preflight's compose and the launcher's): over half
    of a compose's time. This wraps `ConfigRepository.load_config` with a per-process cache keyed by
    the search path, the config path and, for files, their modification time; each hit hands out a
    fresh copy, because Hydra edits the results it is given. The composed configs are the same
    (`tests/test_configs.py` composes with and without the cache). Without the expected Hydra
    internals (another Hydra version) it leaves Hydra alone.
    """
    import copy

    try:
        from hydra._internal.config_repository import ConfigRepository
        from hydra.core.object_type import ObjectType
    except ImportError:  # pragma: no cover - a Hydra without these internals: no cache, same results
        return
    load = ConfigRepository.load_config
    if getattr(load, "_lossbench_memo", False):
        return
    memo: dict[tuple[Any, ...], Any] = {}

    def load_config(self: Any, config_path: str) -> Any:
        try:
            source = self._find_object_source(config_path=config_path, object_type=ObjectType.CONFIG)
            stamp: Any = None
            if source is not None and source.scheme() == "file":
                name = source._normalize_file_name(config_path)
                stamp = os.stat(os.path.join(source.path, name)).st_mtime_ns
            key = (tuple((s.scheme(), s.path) for s in self.sources), config_path, stamp)
        except (AttributeError, OSError, TypeError):
            return load(self, config_path)
        if key in memo:
            return _fresh(memo[key])
        result = load(self, config_path)
        if result is None or stamp is None:  # structured (typed) configs: deep copies keep their types
            memo[key] = copy.deepcopy(result)
            return result
        # a YAML file's result is kept as plain containers (a first load pays only this conversion)
        kept = copy.copy(result)
        kept.config = OmegaConf.to_container(result.config, resolve=False)
        kept.defaults_list = copy.deepcopy(result.defaults_list)
        memo[key] = kept
        return result

    def _fresh(kept: Any) -> Any:
        if kept is None or not isinstance(kept.config, dict):
            return copy.deepcopy(kept)
        out = copy.copy(kept)  # rebuilt from plain containers: cheaper than a deep copy of a config
        out.config = OmegaConf.create(kept.config)
        out.defaults_list = copy.deepcopy(kept.defaults_list)
        out.header = dict(kept.header)
        return out

    load_config._lossbench_memo = True  # type: ignore[attr-defined]
    load_config.__wrapped__ = load  # type: ignore[attr-defined]
    ConfigRepository.load_config = load_config  # type: ignore[method-assign]


_memoize_config_files()

_GROUPS: dict[tuple[Path, ...], frozenset[str]] = {}


def config_groups() -> set[str]:
    """Every config group on Hydra's search path (user config dirs included), internal ones too.

    Listed once per process and set of user directories: every cell's preflight asks (a grid of
    thousands of cells would otherwise spend seconds re-scanning the search path).
    """
    key = tuple(_USER_DIRS)
    if key not in _GROUPS:
        with _hydra_context():
            _GROUPS[key] = frozenset(GlobalHydra.instance().config_loader().list_groups(""))
    return set(_GROUPS[key])


_YAML: dict[tuple[Path, int], DictConfig] = {}


def load_yaml(path: Path) -> DictConfig:
    """An option's YAML file as read by OmegaConf, cached per path and modification time (read-only use)."""
    key = (Path(path), Path(path).stat().st_mtime_ns)
    if key not in _YAML:
        _YAML[key] = OmegaConf.load(path)  # type: ignore[assignment]
        OmegaConf.set_readonly(_YAML[key], True)
    return _YAML[key]


def compose(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The full run config with Hydra `overrides`, exactly as `lossbench run` would compose it."""
    with _hydra_context():
        return hydra_compose("config", overrides=[*overrides, *searchpath_overrides()])


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


def compose_with_hydra(overrides: Sequence[str] = (), then: Sequence[str] = ()) -> DictConfig:
    """Like `compose`, with the `hydra` node (launcher, sweeper params, mode) included.

    `then`: Hydra overrides placed after the user's config directories, where Hydra's app puts the
    ones it adds itself (`hydra.mode=MULTIRUN`), so `hydra.overrides.hydra` lists them in its order.
    """
    with _hydra_context():
        return hydra_compose(
            "config", overrides=[*overrides, *searchpath_overrides(), *then], return_hydra_config=True
        )


def _register_launcher() -> None:
    """Make lossbench's sweeper and launcher (the defaults, `configs/config.yaml`) known to Hydra.

    Hydra finds plugins by scanning the `hydra_plugins` package, which misses an editable install's
    modules; registering them here works for every kind of install.
    """
    from hydra.core.plugins import Plugins

    from hydra_plugins.lossbench_launcher.lossbench_launcher import LossbenchLauncher, LossbenchSweeper

    for plugin in (LossbenchLauncher, LossbenchSweeper):
        Plugins.instance().register(plugin)


_register_launcher()
