"""Checks that preflight (`run.build_components`) runs on plain values before building a cell.

Each raises `ValueError` with one line naming the setting and the fix. They read no config object:
`run.py`, the composition root, hands them resolved values.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from typing import Any

import torch
from hydra.utils import get_object

from lossbench.train.loop import resolve_device


def check_parameter_types(group: str, values: dict[str, Any]) -> None:
    """`ValueError` for a component parameter whose value cannot be of its annotated type.

    `values` is the component's resolved config node (with `_target_`). The constructor's
    annotations are its schema: `loss.gamma=abc` fails here, naming the parameter, rather than deep
    inside the constructor with a message about `str` and `int`.
    """
    target = values.get("_target_")
    if not isinstance(target, str):
        return
    try:
        obj = get_object(target)
        hints = typing.get_type_hints(obj.__init__ if inspect.isclass(obj) else obj)
    except Exception:  # noqa: BLE001  (an unimportable target fails at instantiation, with its own message)
        return
    for key, value in values.items():
        expected = hints.get(str(key))
        if expected is None or str(key).startswith("_"):
            continue
        problem = _type_problem(value, expected)
        if problem:
            raise ValueError(
                f"{group}.{key} must be {problem}, got {value!r}; e.g. {group}.{key}={_example(problem)}"
            )


_SCALARS = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}


def _type_problem(value: Any, expected: Any) -> str | None:
    """What `value` should be to fit annotation `expected` (None when it fits or is not checked here)."""
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(expected) if a is not type(None)]
        if value is None and len(options) < len(typing.get_args(expected)):
            return None
        problems = [_type_problem(value, a) for a in options]
        return None if any(p is None for p in problems) else problems[0]
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, list | tuple):
            return "a list"
        args = [a for a in typing.get_args(expected) if a is not Ellipsis]
        inner = [_type_problem(v, args[0]) for v in value] if args else []
        bad = next((p for p in inner if p), None)
        return f"a list of {bad.split(' ', 1)[1]}s" if bad else None
    if expected not in _SCALARS:
        return None  # mappings, nested configs, classes: the constructor checks them
    if isinstance(value, bool):
        return None if expected is bool else _SCALARS[expected]
    if expected is float and isinstance(value, int | float) or isinstance(value, expected):
        return None
    return _SCALARS[expected]


def _example(problem: str) -> str:
    return (
        "[1, 2]"
        if problem.startswith("a list")
        else {"true or false": "true", "a string": "name"}.get(problem, "1")
    )


def check_device(name: str) -> None:
    """`ValueError` unless `name` is a device this machine has: auto, cpu, cuda or cuda:N."""
    try:
        device = resolve_device(name)
    except ValueError:
        raise
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"trainer.device={name!r} is not a device; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(
            f"trainer.device={name} but this machine has {torch.cuda.device_count()} CUDA device(s); "
            "use trainer.device=cuda (the first) or auto"
        )


def check_schedules(starts: dict[str, int], epochs: int) -> None:
    """Each component's `start_epoch` (DRW, DRS, IB: `{group: start_epoch}`) must be an epoch training reaches."""
    for group, start in starts.items():
        if start >= epochs:
            raise ValueError(
                f"{group}.start_epoch={start} is never reached with trainer.epochs={epochs} (epochs "
                f"are 0-based); use {group}.start_epoch < {epochs} or more trainer.epochs"
            )
