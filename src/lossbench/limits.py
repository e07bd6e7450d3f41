"""Declared limits: "with these parameters, this component computes what that option computes".

A component class lists its limits as data in a class attribute, and the contract checker
(`lossbench check`, `lossbench.contracts`) verifies each one on random inputs:

    class FocalLoss(Loss):
        limits = (Limit(params={"gamma": 0.0}, equals="ce"),)

reads "focal with `gamma=0` equals the `ce` option". Both sides are built from their YAML (so the
YAML values are the defaults), `params` override this component's values, and both are fitted to
`class_counts` when given (e.g. `(7, 7, 7)` for limits that hold on balanced data only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Limit:
    """This component with `params` computes the same outputs as option `equals` of its group.

    Attributes:
        equals: An option of the same config group (built-in or the user's), e.g. ``"ce"``.
        params: Constructor parameters that reach the limit, overriding the YAML values.
        class_counts: Training class counts both sides are fitted to (None: the checker's default,
            long-tailed counts).
    """

    equals: str
    params: Mapping[str, Any] = field(default_factory=dict)
    class_counts: tuple[int, ...] | None = None

    def describe(self) -> str:
        """E.g. ``"gamma=0.0 equals ce"``."""
        params = ", ".join(f"{k}={v}" for k, v in self.params.items()) or "defaults"
        counts = f" on counts {list(self.class_counts)}" if self.class_counts else ""
        return f"{params}{counts} equals {self.equals}"
