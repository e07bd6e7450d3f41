"""Multi-task: named sub-tasks (each classification or regression) predicted from one shared trunk.

Targets are a float32 matrix (N, T): column t holds sub-task t's target (class indices stored as
floats, exactly representable). The model's output (N, sum of widths) holds the sub-tasks' outputs
side by side in sub-task order (`models.multitask.MultiHead`); `slices[t]` is sub-task t's block.
Metrics are each sub-task's own, prefixed `{name}/` (`test/left/acc`), plus `acc`: the mean
accuracy over the classification sub-tasks (the default selection metric `val/acc`; `val/mae`
averaged over regression sub-tasks when there is no classification sub-task). The report turns the
per-sub-task metrics into Δp (`report/multitask.py`).

Groups (what a sampler or weighting of the whole task would see) are the first sub-task's; the
per-sub-task recipes get each sub-task's own statistics (`train/multitask.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from lossbench.tasks.base import CLASSIFICATION, MULTITASK, Task


class MultiTask(Task):
    """Several named sub-tasks on one input (see the module docstring).

    Args:
        subtasks: Sub-task name -> its `Task` (classification or regression), in output order.
    """

    kind: ClassVar[str] = MULTITASK
    target_dtype: ClassVar[torch.dtype] = torch.float32

    def __init__(self, subtasks: Mapping[str, Task]) -> None:
        if not subtasks:
            raise ValueError("a multi-task task needs at least one sub-task")
        first = next(iter(subtasks.values()))
        super().__init__(first.group_counts, first.many_threshold, first.few_threshold)
        self.subtasks = dict(subtasks)
        self.slices: list[slice] = []
        start = 0
        for task in self.subtasks.values():
            self.slices.append(slice(start, start + task.output_width))
            start += task.output_width
        kinds = {t.kind for t in self.subtasks.values()}
        self.select_metric = "val/acc" if CLASSIFICATION in kinds else "val/mae"  # type: ignore[misc]

    @property
    def names(self) -> list[str]:
        """Sub-task names, in output order."""
        return list(self.subtasks)

    @property
    def head_widths(self) -> list[int]:
        """Output width of each sub-task's head."""
        return [t.output_width for t in self.subtasks.values()]

    @property
    def output_width(self) -> int:
        """Sum of the sub-tasks' output widths."""
        return sum(self.head_widths)

    def subtask_targets(self, targets: Tensor, index: int) -> Tensor:
        """Sub-task `index`'s targets (N,) in its own dtype."""
        task = list(self.subtasks.values())[index]
        return targets[:, index].contiguous().to(task.target_dtype)

    def groups(self, targets: Tensor) -> Tensor:
        """The first sub-task's groups."""
        return next(iter(self.subtasks.values())).groups(self.subtask_targets(targets, 0))

    def metrics(
        self, outputs: Tensor, targets: Tensor, many_threshold: int, few_threshold: int, **options: Any
    ) -> dict[str, Any]:
        """Each sub-task's metrics under `{name}/` (its own shot thresholds), plus the mean `acc` or `mae`."""
        out: dict[str, Any] = {}
        accs, maes = [], []
        for i, (name, task) in enumerate(self.subtasks.items()):
            sub = task.metrics(outputs[:, self.slices[i]], self.subtask_targets(targets, i),
                               task.many_threshold, task.few_threshold, **options)  # fmt: skip
            out.update({f"{name}/{k}": v for k, v in sub.items()})
            (accs if task.kind == CLASSIFICATION else maes).append(sub.get("acc", sub.get("mae")))
        if accs:
            out["acc"] = float(sum(accs) / len(accs))
        elif maes:
            out["mae"] = float(sum(maes) / len(maes))
        return out

    def describe(self) -> dict[str, Any]:
        """Kind and each sub-task's description."""
        return {"kind": self.kind, "subtasks": {n: t.describe() for n, t in self.subtasks.items()}}
