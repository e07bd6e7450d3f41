"""The multi-task step of the one training loop: per-sub-task losses (T,), then the task weighting's backward.

Each sub-task gets its own copy of the configured loss and weighting (so class-dependent recipes
such as LDAM or inverse-frequency weighting see that sub-task's own counts), fitted on the
sub-task's training targets. A sub-task whose kind the configured loss does not serve (a regression
sub-task under `loss=ce`) gets its kind's default (`ce` or `mse`), and one the weighting does not
serve gets the plain mean; `describe()` records what each sub-task used.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lossbench.losses.base import Loss
from lossbench.losses.cross_entropy import CrossEntropyLoss
from lossbench.task_weighting.base import TaskWeighting
from lossbench.tasks.base import CLASSIFICATION, prepare
from lossbench.tasks.compatible import kinds_of
from lossbench.tasks.multitask import MultiTask
from lossbench.weighting.base import Weighting
from lossbench.weighting.none import NoWeighting


def default_loss(kind: str) -> Loss:
    """The loss a sub-task of `kind` uses when the configured loss does not serve it: ce or mse."""
    if kind == CLASSIFICATION:
        return CrossEntropyLoss()
    from lossbench.losses.mse import MSELoss  # the regression losses of the task seam

    return MSELoss()


class MultiTaskObjective(nn.Module):
    """Sub-task losses -> task weighting -> gradients, for a `MultiTaskModel` on a `MultiTask`.

    Args:
        task: The multi-task task.
        loss: The configured loss (copied per sub-task it serves).
        weighting: The configured per-example weighting (copied per sub-task it serves).
        task_weighting: How the T sub-task losses become the backward pass.
        targets: Training targets (N, T), to fit each sub-task's recipes.
    """

    def __init__(self, task: MultiTask, loss: Loss, weighting: Weighting, task_weighting: TaskWeighting,
                 targets: Tensor) -> None:  # fmt: skip
        super().__init__()
        self.task = task
        losses, weightings, self.used = [], [], {}
        for i, (name, sub) in enumerate(task.subtasks.items()):
            own_loss = sub.kind in kinds_of(loss)
            sub_loss = copy.deepcopy(loss) if own_loss else default_loss(sub.kind)
            own_weighting = sub.kind in kinds_of(weighting)
            sub_weighting = copy.deepcopy(weighting) if own_weighting else NoWeighting()
            prepare(sub, task.subtask_targets(targets, i), sub_loss, sub_weighting)
            losses.append(sub_loss)
            weightings.append(sub_weighting)
            self.used[name] = {"loss": type(sub_loss).__name__, "weighting": type(sub_weighting).__name__}
        self.losses, self.weightings = nn.ModuleList(losses), nn.ModuleList(weightings)
        self.task_weighting = task_weighting
        task_weighting.fit(len(task.subtasks))

    def task_losses(self, outputs: Tensor, targets: Tensor, features: Tensor) -> Tensor:
        """The scalar objective of each sub-task (T,)."""
        out = []
        for i, (loss, weighting) in enumerate(zip(self.losses, self.weightings, strict=True)):
            o, y = outputs[:, self.task.slices[i]], self.task.subtask_targets(targets, i)
            out.append(weighting(loss(o, y), y, o, features))
        return torch.stack(out)

    def backward(self, model: nn.Module, outputs: Tensor, targets: Tensor, features: Tensor) -> Tensor:
        """Populate the gradients of one batch; returns the detached `sum_t L_t`.

        That sum is the logged `train/loss`, comparable across task weightings (their own objectives
        differ in scale: DB-MTL's log losses, FAMO's weighted logs, ...).
        """
        losses = self.task_losses(outputs, targets, features)
        shared: Sequence[Tensor] = list(model.shared_parameters())  # type: ignore[operator]
        specific: Sequence[Tensor] = list(model.task_parameters())  # type: ignore[operator]
        self.task_weighting.backward(losses, shared, specific, features)
        return losses.detach().sum()

    def on_epoch_start(self, epoch: int) -> None:
        """Forward to the sub-task weightings (deferred recipes) and the task weighting (DWA, FAMO, ...)."""
        for weighting in self.weightings:
            weighting.on_epoch_start(epoch)
        self.task_weighting.on_epoch_start(epoch)

    def on_epoch_end(self, epoch: int, model: nn.Module) -> None:
        """Forward to the sub-task losses and weightings."""
        for part in (*self.losses, *self.weightings):
            part.on_epoch_end(epoch, model)

    def describe(self) -> dict[str, Any]:
        """The loss and weighting class each sub-task trained with."""
        return dict(self.used)
