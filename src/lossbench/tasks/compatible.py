"""Which options serve which task kinds: read from the components' declarations, checked before training.

Every dataset class declares `task_kind` and every loss, weighting, sampler and second stage declares
`task_kinds` (class attributes, so nothing is built or loaded to know them). The config groups are
the registry: the options of a kind are the YAMLs of a group whose `_target_` supports it.
"""

from __future__ import annotations

from pathlib import Path

from hydra.utils import get_class

from lossbench.tasks.base import CLASSIFICATION

# the groups whose options declare the task kinds they support
RECIPE_GROUPS = ("loss", "weighting", "sampler", "stage2")


def kinds_of(component: object) -> tuple[str, ...]:
    """The task kinds a component (class or instance) supports; classification if it declares none."""
    return tuple(getattr(component, "task_kinds", (CLASSIFICATION,)))


def kind_of_dataset(dataset: object) -> str:
    """The task kind of a dataset class or instance (`Dataset.task_kind`)."""
    return str(getattr(dataset, "task_kind", CLASSIFICATION))


def target_of(config_dir: Path, group: str, name: str) -> type:
    """The class named by `configs/<group>/<name>.yaml`'s `_target_`.

    A variant without a `_target_` of its own (`defaults: [digits, _self_]`, e.g. `digits_sym40`) has its
    base option's class.
    """
    from lossbench.config import load_yaml

    node = load_yaml(config_dir / group / f"{name}.yaml")
    if "_target_" not in node:
        bases = [d for d in node.get("defaults", []) if isinstance(d, str) and d != "_self_"]
        if bases:
            return target_of(config_dir, group, bases[0])
    return get_class(str(node["_target_"]))


def options_for(config_dir: Path, group: str, kind: str) -> list[str]:
    """The options of `group` whose component supports task kind `kind`."""
    names = sorted(p.stem for p in (config_dir / group).glob("*.yaml"))
    if group == "dataset":
        return [n for n in names if kind_of_dataset(target_of(config_dir, group, n)) == kind]
    return [n for n in names if kind in kinds_of(target_of(config_dir, group, n))]


def check_compatible(
    config_dir: Path, dataset: str, kind: str, chosen: dict[str, tuple[str, object]]
) -> None:
    """Raise `ValueError` (one line) for the first chosen component that does not support `kind`.

    Args:
        config_dir: The config root (the registry of options).
        dataset: The dataset option's name (for the message).
        kind: The dataset's task kind.
        chosen: `{group: (option name, component class or instance)}` for the recipe groups.

    The message names the compatible options, e.g. ``loss 'ldam' supports classification, not
    regression (dataset 'abalone_rings'); regression losses: balanced_mse, focal_l1, ...``.
    """
    for group, (name, component) in chosen.items():
        supported = kinds_of(component)
        if kind not in supported:
            valid = options_for(config_dir, group, kind)
            plural = {"loss": "losses", "stage2": "stage2 options"}.get(group, f"{group}s")
            raise ValueError(
                f"{group} {name!r} supports {', '.join(supported)}, not {kind} (dataset {dataset!r}); "
                f"{kind} {plural}: {', '.join(valid) or 'none'}"
            )
