"""The task contract: what the targets are, what recipes group by, and how predictions are scored.

A `Task` is built by the dataset from its *training* split and travels in `DataSpec.task`. Generic
code (the loop, the evaluator, weightings, samplers, the CLI's preflight, `lossbench list`) reads
what a task kind is from it instead of assuming class labels and logits (N, C):

* `kind`: the task kind's name (`classification`, `regression`); components declare the kinds they
  support in their class attribute `task_kinds` (checked by `tasks.compatible.check_compatible`).
* targets: dtype `target_dtype`, one target per example, shape (N,).
* `output_width`: width of the model's output (N, output_width) that losses and metrics read.
* groups: the discrete units a re-weighting or re-sampling recipe balances (classes for
  classification, label bins for regression): `groups(targets)` maps targets (N,) to int64 group
  indices in [0, num_groups), and `group_counts` are the training counts per group.
* metrics: `metrics(outputs, targets, many_threshold, few_threshold)` scores one split; the
  default model-selection metric is `select_metric` (its direction is `HIGHER_IS_BETTER`).
* many/medium/few: a test example belongs to the shot group of its group's training count
  (> many_threshold, else < few_threshold, else medium); `many_threshold`/`few_threshold` are the
  task's defaults, used when `trainer.many_threshold`/`few_threshold` are null.

The statistics contract (one signature for every recipe): losses, weightings, samplers and second
stages see the training set once through `fit(task, targets)`, with this task and the training
targets (N,); `prepare(task, targets, *components)` calls it for all of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor

# the task kinds a component supports when it declares nothing else
CLASSIFICATION = "classification"
REGRESSION = "regression"
MULTILABEL = "multilabel"  # tasks/multilabel.py: a binary vector per example
MULTITASK = "multitask"  # tasks/multitask.py: named sub-tasks on one shared trunk


class Task(ABC):
    """What one dataset's targets are; built from the training split (see the module docstring)."""

    kind: ClassVar[str]
    target_dtype: ClassVar[torch.dtype]
    select_metric: ClassVar[str]  # default `trainer.select_metric` (a validation metric)

    def __init__(self, group_counts: tuple[int, ...] | list[int], many_threshold: int, few_threshold: int):
        counts = tuple(int(c) for c in group_counts)
        if not counts or min(counts) < 0:
            raise ValueError(f"group counts must be a non-empty list of counts >= 0, got {list(counts)}")
        if few_threshold > many_threshold:
            raise ValueError(f"few_threshold ({few_threshold}) must be <= many_threshold ({many_threshold})")
        self.group_counts = counts
        self.many_threshold, self.few_threshold = int(many_threshold), int(few_threshold)

    @property
    def num_groups(self) -> int:
        """Number of groups G (classes or label bins)."""
        return len(self.group_counts)

    @property
    @abstractmethod
    def output_width(self) -> int:
        """Width of the model output (N, output_width)."""

    @abstractmethod
    def groups(self, targets: Tensor) -> Tensor:
        """Group index (N,) int64 in [0, num_groups) of each target (N,)."""

    @abstractmethod
    def metrics(
        self, outputs: Tensor, targets: Tensor, many_threshold: int, few_threshold: int, **options: Any
    ) -> dict[str, Any]:
        """Every metric of one split from model outputs (N, output_width) and targets (N,)."""

    def metrics_stacked(
        self, outputs: Tensor, targets: Tensor, many_threshold: int, few_threshold: int, **options: Any
    ) -> list[dict[str, Any]]:
        """`metrics` of K models' outputs (K, N, output_width) on the same targets: one dict per model.

        The stacked trainer's per-epoch scoring; a task kind may override it with one batched pass.
        """
        return [self.metrics(o, targets, many_threshold, few_threshold, **options) for o in outputs]

    def describe(self) -> dict[str, Any]:
        """What a run record keeps about the task (JSON-able)."""
        return {"kind": self.kind, "group_counts": list(self.group_counts)}

    def shot_groups(self, many_threshold: int, few_threshold: int) -> dict[str, Tensor]:
        """Masks (G,) of many- (> many), medium- and few-shot (< few) groups by training count."""
        counts = torch.as_tensor(self.group_counts)
        many, few = counts > many_threshold, counts < few_threshold
        return {"many": many, "medium": ~many & ~few, "few": few}


class Fits(Protocol):
    """Anything that sees the training statistics through the one `fit` signature."""

    def fit(self, task: Task, targets: Tensor) -> None:
        """See the task (group counts, bins) and the training targets (N,)."""


def prepare(task: Task, targets: Tensor, *components: Fits) -> None:
    """Fit every component (loss, weighting, sampler, second stage) on the training statistics.

    The one wiring that `run.py`, the second stages and the tests share: each component's
    `fit(task, targets)` is called once, in order, before training.
    """
    for component in components:
        component.fit(task, targets)
