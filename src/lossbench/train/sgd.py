"""SGD with momentum, weight decay and Nesterov: `torch.optim.SGD`'s update without `torch.optim`.

Why not `torch.optim.SGD`: constructing any `torch.optim` optimizer imports `torch._dynamo` (and
with it sympy and triton), about 2.3 s on the project's CPU machine: a third of what a short run
costs in total. This class does the same arithmetic as `torch.optim.SGD`'s single-tensor path (the
one it takes on CPU), op for op, so the weights are bitwise identical (`tests/test_fast.py`); on
CUDA it uses the `torch._foreach_*` ops (one kernel per op for all parameters), as torch does there.

A group's `lr` and `weight_decay` may also be tensors (K,): one value per member of a stacked model
(`train/stacked.py`), whose parameters have the members along dimension 0.

For every parameter `p` with gradient `g`:
``g = g + weight_decay * p; buf = g (first step) else momentum * buf + (1 - dampening) * g;
g = g + momentum * buf (Nesterov) else buf; p = p - lr * g``.
torch's global optimizer step post-hooks (`register_optimizer_step_post_hook`) run after each step,
as they do for torch's optimizers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor


class SGD:
    """Stochastic gradient descent; one or more parameter groups sharing the hyper-parameters.

    Args:
        params: Tensors (leaf, `requires_grad`) to optimise, or a list of dicts with a "params" key.
        lr: Learning rate; each group's `"lr"` may be changed between steps (the loop's schedule).
        momentum: Momentum factor (0 = none).
        weight_decay: L2 penalty added to the gradient.
        nesterov: Nesterov momentum.
        dampening: Dampening of the momentum.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        dampening: float = 0.0,
    ) -> None:
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov, dampening=dampening
        )
        items = list(params)
        groups = items if items and isinstance(items[0], dict) else [{"params": items}]
        self.param_groups: list[dict[str, Any]] = [
            {**defaults, **g, "params": list(g["params"])} for g in groups
        ]
        self.state: dict[Tensor, Tensor] = {}  # parameter -> momentum buffer

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (or zero) every parameter's gradient."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            per_member = isinstance(group["lr"], Tensor) or isinstance(group["weight_decay"], Tensor)
            if params[0].device.type == "cuda" and not per_member:
                self._foreach_step(params, group)
            else:
                self._single_step(params, group)
        from torch.optim.optimizer import _global_optimizer_post_hooks  # no dynamo import: a plain dict

        for hook in _global_optimizer_post_hooks.values():
            hook(self, (), {})

    def _single_step(self, params: list[Tensor], group: dict[str, Any]) -> None:
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        for p in params:
            grad = p.grad
            if isinstance(wd, Tensor):  # one value per stacked member (dim 0 of every parameter)
                grad = grad + _per_member(wd, p) * p
            elif wd != 0:
                grad = grad.add(p, alpha=wd)
            if momentum != 0:
                buf = self.state.get(p)
                if buf is None:
                    buf = self.state[p] = torch.clone(grad).detach()
                else:
                    buf.mul_(momentum).add_(grad, alpha=1 - group["dampening"])
                grad = grad.add(buf, alpha=momentum) if group["nesterov"] else buf
            if isinstance(lr, Tensor):
                p.sub_(_per_member(lr, p) * grad)
            else:
                p.add_(grad, alpha=-lr)

    def _foreach_step(self, params: list[Tensor], group: dict[str, Any]) -> None:
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        grads = [p.grad for p in params]
        if wd != 0:
            grads = torch._foreach_add(grads, params, alpha=wd)
        if momentum != 0:
            if all(p in self.state for p in params):
                bufs = [self.state[p] for p in params]
                torch._foreach_mul_(bufs, momentum)
                torch._foreach_add_(bufs, grads, alpha=1 - group["dampening"])
            else:
                bufs = [
                    self.state.setdefault(p, torch.clone(g).detach())
                    for p, g in zip(params, grads, strict=True)
                ]
            grads = torch._foreach_add(grads, bufs, alpha=momentum) if group["nesterov"] else bufs
        torch._foreach_add_(params, grads, alpha=-lr)

    def state_dict(self) -> dict[str, Any]:
        """Hyper-parameters per group and the momentum buffers in parameter order (None: no step yet)."""
        return {
            "groups": [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups],
            "momentum": [self.state.get(p) for g in self.param_groups for p in g["params"]],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (same parameters, same order)."""
        for group, saved in zip(self.param_groups, state["groups"], strict=True):
            group.update(saved)
        params = [p for g in self.param_groups for p in g["params"]]
        self.state = {
            p: b.to(p.device, copy=True)
            for p, b in zip(params, state["momentum"], strict=True)
            if b is not None
        }


def _per_member(values: Tensor, p: Tensor) -> Tensor:
    """Per-member values (K,) shaped to broadcast over a stacked parameter (K, ...)."""
    return values.to(p.dtype).view(-1, *([1] * (p.dim() - 1)))
