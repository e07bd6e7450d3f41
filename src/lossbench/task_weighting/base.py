"""The task-weighting contract: per-task losses (T,) in, gradients on the model's parameters out.

A multi-task model has *shared* parameters (the trunk) and *specific* ones (one head per task).
`TaskWeighting.backward(losses, shared, specific, features)` is the only thing the training loop
calls per batch instead of `objective.backward()`: the method decides how the T task losses become
gradients and returns the weights it applied (T,) for logging. Learnable weights (uncertainty
weighting, GradNorm, IMTL's loss scales) are `nn.Parameter`s of the module: the loop's optimizer
steps them like any other parameter. Epoch-level methods (DWA, FAMO, GradNorm's reference losses)
read `history`, the per-epoch mean of each task's loss, kept here once for all of them.

Two families, as in LibMTL (Lin & Zhang 2023, `LibMTL/weighting/abstract_weighting.py`):

* `LossWeighting`: a differentiable scalar `objective(losses)`; one backward pass.
* `GradientWeighting`: reads the (T, P) matrix of per-task gradients on the shared parameters, from
  ONE helper (`task_gradients`, T backward passes with `retain_graph`), and writes the combined
  direction (P,) into the shared parameters' `.grad`. Specific parameters (heads) and the method's
  own parameters get the gradient of `sum_t transform(losses)_t`, i.e. each head its own task's
  (transformed, unweighted) gradient: LibMTL's behaviour and MGDA's Algorithm 2 (Sener & Koltun 2018).
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn


def task_gradients(losses: Tensor, inputs: Sequence[Tensor]) -> Tensor:
    """Per-task gradients of `losses` (T,) with respect to `inputs`, flattened: (T, P).

    P is the total number of elements of `inputs` (parameters, or a representation tensor for
    MGDA-UB). Inputs a task does not reach get zero gradient. The graph is retained so the caller
    can backpropagate again.
    """
    rows = []
    for t in range(len(losses)):
        grads = torch.autograd.grad(losses[t], list(inputs), retain_graph=True, allow_unused=True)
        rows.append(
            torch.cat(
                [
                    (torch.zeros_like(x) if g is None else g).reshape(-1)
                    for g, x in zip(grads, inputs, strict=True)
                ]
            )
        )
    return torch.stack(rows)


def write_gradient(params: Sequence[Tensor], direction: Tensor) -> None:
    """Set `p.grad` of each parameter from the flat `direction` (P,), in order (overwrites)."""
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = direction[offset : offset + n].view_as(p).detach().clone()
        offset += n


class TaskWeighting(nn.Module, metaclass=ABCMeta):
    """Turns per-task losses (T,) into the backward pass; returns the task weights applied (T,).

    Call `fit(num_tasks)` once before training. The loop calls `on_epoch_start(epoch)` before every
    epoch; the mean loss of each task over the finished epoch is then appended to `history`
    (a list of (T,) float64 tensors, one per epoch), which epoch-level methods read.
    """

    extra_state_keys: tuple[str, ...] = ("num_tasks",)  # more plain attributes a subclass checkpoints
    min_tasks = 2  # fewer sub-tasks (a single-task baseline) only with `equal`

    def __init__(self) -> None:
        super().__init__()
        self.num_tasks = 0
        self.epoch = 0
        self.history: list[Tensor] = []
        self._sum = torch.zeros(0, dtype=torch.float64)
        self._count = 0

    def fit(self, num_tasks: int) -> None:
        """Set the number of tasks T (>= 2 for every method but `equal`); subclasses build state here."""
        if num_tasks < 1:
            raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
        self.num_tasks = int(num_tasks)
        self._sum = torch.zeros(self.num_tasks, dtype=torch.float64)

    def on_epoch_start(self, epoch: int) -> None:
        """Close the previous epoch's loss means into `history`, then remember `epoch`."""
        if self._count:
            self.history.append(self._sum / self._count)
            self._sum, self._count = torch.zeros_like(self._sum), 0
        self.epoch = int(epoch)

    def get_extra_state(self) -> dict[str, Any]:
        """Plain-Python state (epoch, loss history, step counters) saved in checkpoints with the buffers."""
        return {k: getattr(self, k) for k in ("epoch", "history", "_sum", "_count", *self.extra_state_keys)}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore `get_extra_state`'s values."""
        for key, value in state.items():
            setattr(self, key, value)

    def _record(self, losses: Tensor) -> None:
        if self.num_tasks == 0:
            raise RuntimeError(f"{type(self).__name__}.fit(num_tasks) must be called before use")
        if losses.shape != (self.num_tasks,):
            raise ValueError(f"expected {self.num_tasks} task losses, got shape {tuple(losses.shape)}")
        self._sum += losses.detach().double().cpu()
        self._count += 1

    @abstractmethod
    def backward(
        self,
        losses: Tensor,
        shared: Sequence[Tensor],
        specific: Sequence[Tensor],
        features: Tensor | None = None,
    ) -> Tensor:
        """Populate `.grad` of `shared`, `specific` and own parameters; return the weights (T,)."""


class LossWeighting(TaskWeighting):
    """A method that is a differentiable scalar of the task losses (one backward pass)."""

    @abstractmethod
    def objective(self, losses: Tensor) -> tuple[Tensor, Tensor]:
        """The scalar to backpropagate and the (detached) weights it puts on each task (T,)."""

    def backward(
        self,
        losses: Tensor,
        shared: Sequence[Tensor],
        specific: Sequence[Tensor],
        features: Tensor | None = None,
    ) -> Tensor:
        """Backpropagate `objective(losses)` through everything."""
        self._record(losses)
        total, weights = self.objective(losses)
        total.backward()
        return weights.detach()


class GradientWeighting(TaskWeighting):
    """A method that combines the per-task gradients G (T, P) on the shared parameters.

    Subclasses define `combine(grads, losses) -> (direction (P,), weights (T,))`, and optionally
    `transform(losses)` (IMTL scales the losses, DB-MTL takes their log) before the gradients are
    taken. With `on_features = True` (MGDA-UB) G holds gradients with respect to the shared
    representation `features` (T, N*D) instead, and `combine` returns only weights: the shared
    parameters then get the gradient of `sum_t w_t loss_t` (one more backward pass).
    """

    on_features = False

    def transform(self, losses: Tensor) -> Tensor:
        """The losses whose gradients are combined (default: unchanged)."""
        return losses

    @abstractmethod
    def combine(self, grads: Tensor, losses: Tensor) -> tuple[Tensor | None, Tensor]:
        """The shared parameters' update direction (P,) (None with `on_features`) and the weights (T,)."""

    def backward(
        self,
        losses: Tensor,
        shared: Sequence[Tensor],
        specific: Sequence[Tensor],
        features: Tensor | None = None,
    ) -> Tensor:
        """Per-task gradients -> `combine` -> shared `.grad`; heads get their own tasks' gradients."""
        self._record(losses)
        transformed = self.transform(losses)
        if self.on_features:
            if features is None:
                raise ValueError(f"{type(self).__name__} needs the shared representation (features)")
            grads = task_gradients(transformed, [features])
        else:
            grads = task_gradients(transformed, shared)
        direction, weights = self.combine(grads, transformed.detach())
        rest = [*specific, *(p for p in self.parameters() if p.requires_grad)]
        if direction is None:  # weights on the representation's gradients: weighted backward on the trunk
            torch.autograd.backward(
                (weights.detach() * transformed).sum(), inputs=list(shared), retain_graph=True
            )
        else:
            write_gradient(shared, direction)
        if rest:
            torch.autograd.backward(transformed.sum(), inputs=rest)
        return weights.detach()


def check_tasks(method: TaskWeighting, minimum: int = 2) -> None:
    """Raise `ValueError` unless `fit` gave `method` at least `minimum` tasks."""
    if method.num_tasks < minimum:
        raise ValueError(f"{type(method).__name__} needs at least {minimum} tasks, got {method.num_tasks}")
