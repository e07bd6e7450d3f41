"""Run identity: the hash of the resolved values that can change a result, normalised.

A run id must not change when nothing that can change the result changes, and must change when
something that can does. `identity_view` turns a resolved config into that canonical form:

* keys that only say where a run is stored or logged (`groups.NON_IDENTITY_KEYS`) are dropped;
* execution settings are dropped: fields of a typed schema (`TrainerConfig`, `StoreConfig`) declared
  with ``field(..., metadata={"execution": True})`` and the parameters a component class lists in
  its ``execution_params`` class attribute (e.g. a dataset's `root`: its files are checked instead);
* a value equal to its default is dropped, so a spelled-out default equals an omitted one (defaults:
  the schema's field default, or the `_target_` constructor's signature default);
* numbers are normalised (``2 == 2.0``; tuples are lists), and the seed must be an integer.

Dropping spelled-out defaults means a later change of a constructor default would keep the ids of
runs made under the old default: change a default together with a new option name, never in place.
Importing the component classes (for their defaults) imports their modules; importing this module
does not.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import inspect
import json
import math
from typing import Any

from lossbench.groups import NON_IDENTITY_KEYS

_MISSING = object()


def check_seed(value: Any) -> int:
    """The seed as an int; `ValueError` for anything that is not an integer (``1.0`` is 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"seed must be an integer, got {value!r}; use e.g. seed=0 or -m seed=0,1,2")
    if value != int(value):
        raise ValueError(
            f"seed must be an integer, got {value!r}; use seed={int(value)} or seed={int(value) + 1}"
        )
    if not 0 <= value < 2**63:  # torch's generators take 64-bit seeds
        raise ValueError(f"seed must be in [0, 2**63), got {int(value)}; use e.g. seed=0")
    return int(value)


def normalise(value: Any) -> Any:
    """Canonical JSON-able form: integral floats become ints, tuples lists, dict keys strings."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else value
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        return {str(k): normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    return str(value)


def execution_fields(schema: type) -> set[str]:
    """Names of the fields of dataclass `schema` declared ``metadata={"execution": True}``."""
    return {f.name for f in dataclasses.fields(schema) if f.metadata.get("execution")}


def _schema_defaults(schema: type) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(schema):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


@functools.cache
def _target_info(target: str) -> tuple[dict[str, Any], frozenset[str]]:
    """(constructor defaults, execution parameters) of a `_target_`; empty when it cannot be imported."""
    module, _, name = target.rpartition(".")
    try:
        obj: Any = getattr(importlib.import_module(module), name)
        signature = inspect.signature(obj)
    except (ImportError, AttributeError, ValueError, TypeError):
        return {}, frozenset()
    defaults = {
        k: p.default for k, p in signature.parameters.items() if p.default is not inspect.Parameter.empty
    }
    return defaults, frozenset(getattr(obj, "execution_params", ()))


def _strip(
    node: dict[str, Any], defaults: dict[str, Any], execution: set[str] | frozenset[str]
) -> dict[str, Any]:
    out = {}
    for key, value in node.items():
        if key in execution:
            continue
        value = _view(value)
        default = defaults.get(key, _MISSING)
        if default is not _MISSING and value == normalise(default):
            continue
        out[key] = value
    return out


def _view(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("_target_"), str):
        defaults, execution = _target_info(value["_target_"])
        return _strip(value, defaults, execution)
    if isinstance(value, dict):
        return {str(k): _view(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_view(v) for v in value]
    return normalise(value)


def identity_view(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that can change a result, in canonical form (see the module doc)."""
    from lossbench.train.config import TrainerConfig

    schemas: dict[str, type] = {"trainer": TrainerConfig}
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key in NON_IDENTITY_KEYS:
            continue
        if key == "seed":
            out[key] = check_seed(value)
        elif key in schemas and isinstance(value, dict):
            schema = schemas[key]
            if key == "trainer":
                value = _task_defaults_to_null(value, config.get("dataset"))
            out[key] = _strip(value, _schema_defaults(schema), execution_fields(schema))
        else:
            out[key] = _view(value)
    return out


# Trainer fields whose null default means "the task's default" (`tasks/`). Runs recorded before the
# Task seam spelled out the classification defaults (`val/acc`, 100, 20); for a classification
# dataset those values and null are the same setting, so they keep one run id.
_TASK_DEFAULTED = ("select_metric", "many_threshold", "few_threshold")


def _task_defaults_to_null(trainer: dict[str, Any], dataset: Any) -> dict[str, Any]:
    from lossbench.tasks.classification import ClassificationTask
    from lossbench.tasks.compatible import kind_of_dataset

    target = dataset.get("_target_") if isinstance(dataset, dict) else None
    module, _, name = str(target).rpartition(".")
    try:
        kind = kind_of_dataset(getattr(importlib.import_module(module), name))
    except (ImportError, AttributeError, ValueError):
        return trainer
    if kind != ClassificationTask.kind:
        return trainer
    init = inspect.signature(ClassificationTask.__init__).parameters
    defaults = {
        "select_metric": ClassificationTask.select_metric,
        "many_threshold": init["many_threshold"].default,
        "few_threshold": init["few_threshold"].default,
    }
    return {k: (None if k in defaults and normalise(v) == defaults[k] else v) for k, v in trainer.items()}


def _digest(view: dict[str, Any]) -> str:
    blob = json.dumps(view, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def run_id_of(config: dict[str, Any]) -> str:
    """The run id: hash of `identity_view(config)` (seed included)."""
    return _digest(identity_view(config))


def variant_of(config: dict[str, Any]) -> str:
    """Hash of the identity without the seed: runs sharing it are seeds of one cell."""
    return _digest({k: v for k, v in identity_view(config).items() if k != "seed"})
