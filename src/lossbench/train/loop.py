"""The one training loop every cell of every grid goes through."""

from __future__ import annotations

import math
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from lossbench.data.spec import DataSpec
from lossbench.losses.base import Loss
from lossbench.metrics.names import higher_is_better
from lossbench.models.base import Classifier
from lossbench.samplers.base import Sampler
from lossbench.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from lossbench.train.config import TrainerConfig
from lossbench.train.evaluate import Evaluator
from lossbench.train.fast import (
    apply_determinism,
    autocast,
    execution_record,
    maybe_compile,
    memory_format,
    to_format,
)
from lossbench.train.multitask import MultiTaskObjective
from lossbench.train.sgd import SGD
from lossbench.weighting.base import Weighting

EpochCallback = Callable[[dict[str, Any]], None]


class EpochEndHook(Protocol):
    """A component that acts after each epoch's last optimizer step, before evaluation."""

    def on_epoch_end(self, epoch: int, model: nn.Module) -> None:
        """Called with the 0-based epoch and the model (e.g. a projection of its weights)."""


class Diverged(RuntimeError):
    """The training objective became NaN or infinite; `history` holds the epochs before it."""

    def __init__(self, epoch: int, value: float, history: list[dict[str, Any]]) -> None:
        super().__init__(f"training loss is {value} at epoch {epoch}")
        self.epoch, self.history = epoch, history


@dataclass
class FitResult:
    """What a finished run hands to the store.

    `metrics` holds `{selection}/{split}/{name}` for selection in last (final epoch), best (best
    `select_metric` on validation) and oracle (best test value of the task's default metric, e.g.
    accuracy or MAE: what papers that select on the test set report; flagged by its name), plus
    `best_epoch`, `oracle_epoch`, `train_time_s`, `peak_mem_mb`.
    """

    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int | None = None  # the checkpointed epoch training continued after, if any
    execution: dict[str, Any] = field(default_factory=dict)  # how it ran (`train/fast.py`), for the record


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU; anything else is passed to `torch.device`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"trainer.device={name} but CUDA is not available (use trainer.device=auto or cpu)")
    return device


def seed_everything(seed: int) -> None:
    """Seed torch's CPU and CUDA generators (model initialisation, dropout)."""
    torch.manual_seed(seed)


def fit(
    model: Classifier,
    loss: Loss,
    weighting: Weighting,
    sampler: Sampler,
    data: DataSpec,
    cfg: TrainerConfig,
    seed: int,
    on_epoch_end: EpochCallback | None = None,
    checkpoint_dir: str | Path | None = None,
    evaluator: Evaluator | None = None,
    hooks: Sequence[EpochEndHook] = (),
    multitask: MultiTaskObjective | None = None,
) -> FitResult:
    """Train `model` on `data.train` with `weighting(loss(logits, y))`; evaluate on val and test.

    `loss`, `weighting` and `sampler` must already have seen the training statistics
    (`tasks.base.prepare`). `evaluator` scores val and test (built from `cfg` when None; `run.py`
    builds one per run and shares it with the second stage). After each epoch's last step the loop
    calls `on_epoch_end(epoch, model)` on the loss, the weighting and each of `hooks`. Raises
    `Diverged` when the epoch's mean objective is not finite. With `checkpoint_dir`, training
    continues after the checkpoint found there (if any) and, when `cfg.checkpoint_every` > 0,
    saves one every that many epochs (`train/checkpoint.py`): a resumed run ends exactly as an
    uninterrupted one would (on CPU, same seed). With `multitask` (a multi-task dataset and model),
    each batch's gradients come from `multitask.backward` (per-sub-task losses, then the task
    weighting) instead of `weighting(loss(...)).backward()`; everything else is this same loop.
    """
    device = resolve_device(cfg.device)
    apply_determinism(cfg.deterministic, device, cfg.compile)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    fmt = memory_format(model)
    model.to(device, memory_format=fmt), loss.to(device), weighting.to(device)
    if multitask is not None:
        multitask.to(device)
    x, y = data.train.x.to(device), data.train.y.to(device)
    groups = param_groups(model, loss, weighting)
    if multitask is not None:  # learnable task weights (UW, GradNorm, IMTL) follow the schedule too
        groups[0]["params"] += [p for p in multitask.parameters() if p.requires_grad]
    opt = SGD(
        groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay,
    )  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    evaluator = evaluator if evaluator is not None else Evaluator.of(data, cfg, device)
    track = Selection(cfg, evaluator)
    first_epoch, spent_s = 0, 0.0
    saved = load_checkpoint(checkpoint_dir)
    if saved is not None:  # continue after the last checkpointed epoch, bit for bit
        for part, name in (
            (model, "model"),
            (loss, "loss"),
            (weighting, "weighting"),
            (opt, "opt"),
            (multitask, "multitask"),
        ):
            if part is not None:
                part.load_state_dict(saved[name])
        generator.set_state(saved["generator"])
        set_rng_state(saved["rng"])
        track.load(saved)
        spent_s = saved["spent_s"]
        first_epoch = saved["epoch"] + 1
    maybe_compile(model, cfg.compile)
    start = time.perf_counter() - spent_s
    bar = tqdm(
        range(first_epoch, cfg.epochs), desc="epochs", leave=False,
        disable=not (cfg.progress and sys.stderr.isatty()),
    )  # fmt: skip
    for epoch in bar:
        lr = set_lr(opt, cfg, epoch)
        weighting.on_epoch_start(epoch)
        if multitask is not None:
            multitask.on_epoch_start(epoch)
        model.train()
        order = sampler.epoch_indices(epoch, generator).to(device)
        if cfg.max_steps:  # smoke runs of paper-sized grids: the first max_steps batches only
            order = order[: cfg.max_steps * cfg.batch_size]
        total = torch.zeros((), device=device)
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            xb, yb = x[idx], y[idx]
            if data.augment is not None:
                xb = data.augment(xb)
            with autocast(cfg.precision, device):
                feats = model.features(to_format(xb, fmt))
                logits = model.head(feats)
            opt.zero_grad(set_to_none=True)
            if multitask is None:
                objective = weighting(loss(logits.float(), yb), yb, logits.float(), feats.float())
                objective.backward()
            else:  # per-sub-task losses -> the task weighting writes the gradients
                objective = multitask.backward(model, logits.float(), yb, feats.float())
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(
                    [p for g in opt.param_groups for p in g["params"]], cfg.grad_clip
                )
            opt.step()
            total += objective.detach() * len(idx)
        for part in (loss, weighting, *hooks) if multitask is None else (loss, weighting, multitask, *hooks):
            part.on_epoch_end(epoch, model)
        train_loss = float(total) / max(1, len(order))  # the epoch's one host synchronisation
        row: dict[str, Any] = {"epoch": epoch, "lr": lr, "train/loss": train_loss}
        if not math.isfinite(train_loss):
            track.history.append(row)
            raise Diverged(epoch, train_loss, track.history)
        if is_due(cfg, epoch):
            scale = (
                loss.logit_scale if multitask is None else 1.0
            )  # multi-task outputs mix sub-tasks: never rescaled
            with autocast(cfg.precision, device):
                last = evaluator.evaluate(model, track.splits, logit_scale=scale)
            shown = track.evaluated(row, last)
            bar.set_postfix_str(f"loss {train_loss:.3f}, {shown}")
        track.history.append(row)
        if checkpoint_dir is not None and cfg.checkpoint_every and (epoch + 1) % cfg.checkpoint_every == 0:
            save_checkpoint(checkpoint_dir, dict(
                model=model.state_dict(), loss=loss.state_dict(), weighting=weighting.state_dict(),
                multitask=None if multitask is None else multitask.state_dict(),
                opt=opt.state_dict(), generator=generator.get_state(), rng=rng_state(), epoch=epoch,
                spent_s=time.perf_counter() - start, **track.state(),
            ))  # fmt: skip
        if on_epoch_end is not None:
            on_epoch_end(row)
    metrics = track.metrics()
    metrics["train_time_s"] = time.perf_counter() - start
    metrics["peak_mem_mb"] = _peak_memory_mb(device)
    return FitResult(
        metrics=metrics, history=track.history, resumed_from=first_epoch - 1 if saved else None,
        execution=execution_record(cfg, device, model),
    )  # fmt: skip


def param_groups(model: nn.Module, loss: Loss, weighting: Weighting) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: everything on the schedule, except a recipe's `fixed_lr` parameters.

    A loss or weighting with `fixed_lr` (Balanced MSE's noise scale) keeps its own constant rate.
    """
    params = [p for m in (model, loss, weighting) for p in m.parameters() if p.requires_grad]
    fixed = [
        (m, [p for p in m.parameters() if p.requires_grad])
        for m in (loss, weighting)
        if m.fixed_lr is not None
    ]
    mine = {id(p) for _, own in fixed for p in own}
    groups = [{"params": [p for p in params if id(p) not in mine]}]
    return groups + [{"params": own, "lr": m.fixed_lr, "fixed_lr": True} for m, own in fixed if own]


class Selection:
    """A run's per-epoch history and its last / best-validation / oracle evaluations.

    The one bookkeeping every trainer shares (`fit` and the stacked trainer, `train/stacked.py`):
    `evaluated` takes an evaluated epoch's row and per-split metrics; `metrics` gives the
    `FitResult.metrics` described there. Best: the best `select_metric` on validation (the task's
    default when null); oracle: the best test value of the task's default metric.
    """

    def __init__(self, cfg: TrainerConfig, evaluator: Evaluator) -> None:
        self.select = (cfg.select_metric or evaluator.select_metric).split("/", 1)[1]
        self.sign = 1.0 if higher_is_better(self.select) else -1.0
        self.task_metric = evaluator.select_metric.split("/", 1)[
            1
        ]  # the oracle's test metric (acc, mae, ...)
        self.task_sign = 1.0 if higher_is_better(self.task_metric) else -1.0
        # an empty validation split (paper protocols with val_per_class=0): no best-val selection at all
        self.splits = evaluator.splits()
        self.has_val = "val" in self.splits
        self.history: list[dict[str, Any]] = []
        self.last: dict[str, dict[str, Any]] = {}
        self.best: tuple[float, int, dict[str, dict[str, Any]]] = (-math.inf, -1, {})
        self.oracle: tuple[float, int, dict[str, dict[str, Any]]] = (-math.inf, -1, {})

    def evaluated(self, row: dict[str, Any], last: dict[str, dict[str, Any]]) -> str:
        """Take the epoch's evaluation `last` ({split: metrics}) into `row` and the trackers.

        Returns the progress bar's summary, e.g. ``"val/acc 0.812"``.
        """
        self.last, epoch = last, row["epoch"]
        for split, values in last.items():
            row.update({f"{split}/{k}": v for k, v in values.items() if not isinstance(v, list | dict)})
        score = _score(last["val"][self.select], self.sign) if "val" in last else -math.inf
        if score > self.best[0]:
            self.best = (score, epoch, last)
        if _score(last["test"][self.task_metric], self.task_sign) > self.oracle[0]:
            self.oracle = (_score(last["test"][self.task_metric], self.task_sign), epoch, last)
        split, name = ("val", self.select) if "val" in last else ("test", self.task_metric)
        return f"{split}/{name} {last[split][name]:.3f}"

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of it."""
        return dict(history=self.history, last=self.last, best=self.best, oracle=self.oracle)

    def load(self, saved: dict[str, Any]) -> None:
        """Restore what `state` returned."""
        self.history, self.last = saved["history"], saved["last"]
        self.best, self.oracle = tuple(saved["best"]), tuple(saved["oracle"])  # type: ignore[assignment]

    def metrics(self) -> dict[str, Any]:
        """`{selection}/{split}/{name}` for last, best and oracle, plus `best_epoch` and `oracle_epoch`."""
        metrics: dict[str, Any] = {}
        for selection, result in (("last", self.last), ("best", self.best[2]), ("oracle", self.oracle[2])):
            for split, values in result.items():
                metrics.update({f"{selection}/{split}/{k}": v for k, v in values.items()})
        metrics["best_epoch"], metrics["oracle_epoch"] = (
            (self.best[1] if self.has_val else None),
            self.oracle[1],
        )
        if not self.has_val:
            metrics["selection_note"] = "no validation split: best/ metrics absent; report last/ or oracle/"
        return metrics


def is_due(cfg: TrainerConfig, epoch: int) -> bool:
    """Whether `epoch` (0-based) is evaluated: every `eval_every` epochs and always the last one."""
    return (epoch + 1) % cfg.eval_every == 0 or epoch == cfg.epochs - 1


def set_lr(opt: SGD, cfg: TrainerConfig, epoch: int) -> float:
    """Set the scheduled learning rate for `epoch` on every group without a `fixed_lr`; returns it."""
    lr = cfg.lr * cfg.lr_factor(epoch)
    for group in opt.param_groups:
        if not group.get("fixed_lr"):
            group["lr"] = lr
    return lr


def _score(value: float | None, sign: float) -> float:
    """Larger is better; a missing or NaN metric ranks last."""
    return -math.inf if value is None or math.isnan(value) else sign * value


def _peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated by this run, or the process's peak resident set size on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
