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
from lossbench.metrics.names import HIGHER_IS_BETTER
from lossbench.models.base import Classifier
from lossbench.samplers.base import Sampler
from lossbench.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from lossbench.train.config import TrainerConfig
from lossbench.train.evaluate import Evaluator
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
    accuracy or MAE: what papers that select on the test set report; flagged by its name), plus `best_epoch`, `oracle_epoch`, `train_time_s`, `peak_mem_mb`.
    """

    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int | None = None  # the checkpointed epoch training continued after, if any


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
) -> FitResult:
    """Train `model` on `data.train` with `weighting(loss(logits, y))`; evaluate on val and test.

    `loss`, `weighting` and `sampler` must already have seen the training statistics
    (`tasks.base.prepare`). `evaluator` scores val and test (built from `cfg` when None; `run.py`
    builds one per run and shares it with the second stage). After each epoch's last step the loop
    calls `on_epoch_end(epoch, model)` on the loss, the weighting and each of `hooks`. Raises
    `Diverged` when the epoch's mean objective is not finite. With `checkpoint_dir`, training
    continues after the checkpoint found there (if any) and, when `cfg.checkpoint_every` > 0,
    saves one every that many epochs (`train/checkpoint.py`): a resumed run ends exactly as an
    uninterrupted one would (on CPU, same seed).
    """
    device = resolve_device(cfg.device)
    torch.use_deterministic_algorithms(cfg.deterministic, warn_only=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model.to(device), loss.to(device), weighting.to(device)
    x, y = data.train.x.to(device), data.train.y.to(device)
    params: list[Any] = [p for m in (model, loss, weighting) for p in m.parameters() if p.requires_grad]
    fixed = [
        (m, [p for p in m.parameters() if p.requires_grad])
        for m in (loss, weighting)
        if m.fixed_lr is not None
    ]
    if any(own for _, own in fixed):  # e.g. Balanced MSE's noise scale: its own constant lr, no schedule
        mine = {id(p) for _, own in fixed for p in own}
        params = [{"params": [p for p in params if id(p) not in mine]}]
        params += [{"params": own, "lr": m.fixed_lr, "fixed_lr": True} for m, own in fixed if own]
    opt = torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
    )
    generator = torch.Generator().manual_seed(seed)
    evaluator = evaluator if evaluator is not None else Evaluator.of(data, cfg, device)
    select = (cfg.select_metric or evaluator.select_metric).split("/", 1)[1]
    sign = 1.0 if HIGHER_IS_BETTER.get(select, True) else -1.0
    task_metric = evaluator.select_metric.split("/", 1)[1]  # the oracle's test metric (acc, mae, ...)
    task_sign = 1.0 if HIGHER_IS_BETTER.get(task_metric, True) else -1.0
    history: list[dict[str, Any]] = []
    last: dict[str, dict[str, Any]] = {}
    best: tuple[float, int, dict[str, dict[str, Any]]] = (-math.inf, -1, {})
    oracle: tuple[float, int, dict[str, dict[str, Any]]] = (-math.inf, -1, {})
    # an empty validation split (paper protocols with val_per_class=0): no best-val selection at all
    splits = evaluator.splits()
    first_epoch, spent_s = 0, 0.0
    saved = load_checkpoint(checkpoint_dir)
    if saved is not None:  # continue after the last checkpointed epoch, bit for bit
        for part, name in ((model, "model"), (loss, "loss"), (weighting, "weighting"), (opt, "opt")):
            part.load_state_dict(saved[name])
        generator.set_state(saved["generator"])
        set_rng_state(saved["rng"])
        history, last, spent_s = saved["history"], saved["last"], saved["spent_s"]
        best, oracle = tuple(saved["best"]), tuple(saved["oracle"])  # type: ignore[assignment]
        first_epoch = saved["epoch"] + 1
    start = time.perf_counter() - spent_s
    bar = tqdm(
        range(first_epoch, cfg.epochs), desc="epochs", leave=False,
        disable=not (cfg.progress and sys.stderr.isatty()),
    )  # fmt: skip
    for epoch in bar:
        lr = cfg.lr * cfg.lr_factor(epoch)
        for group in opt.param_groups:
            if not group.get("fixed_lr"):
                group["lr"] = lr
        weighting.on_epoch_start(epoch)
        model.train()
        order = sampler.epoch_indices(epoch, generator).to(device)
        total = torch.zeros((), device=device)
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            xb, yb = x[idx], y[idx]
            if data.augment is not None:
                xb = data.augment(xb)
            feats = model.features(xb)
            logits = model.head(feats)
            objective = weighting(loss(logits, yb), yb, logits, feats)
            opt.zero_grad(set_to_none=True)
            objective.backward()
            opt.step()
            total += objective.detach() * len(idx)
        for part in (loss, weighting, *hooks):
            part.on_epoch_end(epoch, model)
        train_loss = float(total) / max(1, len(order))
        row: dict[str, Any] = {"epoch": epoch, "lr": lr, "train/loss": train_loss}
        if not math.isfinite(train_loss):
            history.append(row)
            raise Diverged(epoch, train_loss, history)
        if (epoch + 1) % cfg.eval_every == 0 or epoch == cfg.epochs - 1:
            last = evaluator.evaluate(model, splits, logit_scale=loss.logit_scale)
            for split, values in last.items():
                row.update({f"{split}/{k}": v for k, v in values.items() if not isinstance(v, list | dict)})
            score = _score(last["val"][select], sign) if "val" in last else -math.inf
            if score > best[0]:
                best = (score, epoch, last)
            if _score(last["test"][task_metric], task_sign) > oracle[0]:
                oracle = (_score(last["test"][task_metric], task_sign), epoch, last)
            shown = ("val", select) if "val" in last else ("test", task_metric)
            bar.set_postfix(loss=f"{train_loss:.3f}", **{shown[0]: f"{last[shown[0]][shown[1]]:.3f}"})
        history.append(row)
        if checkpoint_dir is not None and cfg.checkpoint_every and (epoch + 1) % cfg.checkpoint_every == 0:
            save_checkpoint(checkpoint_dir, dict(
                model=model.state_dict(), loss=loss.state_dict(), weighting=weighting.state_dict(),
                opt=opt.state_dict(), generator=generator.get_state(), rng=rng_state(), epoch=epoch,
                history=history, last=last, best=best, oracle=oracle, spent_s=time.perf_counter() - start,
            ))  # fmt: skip
        if on_epoch_end is not None:
            on_epoch_end(row)
    metrics: dict[str, Any] = {}
    for selection, result in (("last", last), ("best", best[2]), ("oracle", oracle[2])):
        for split, values in result.items():
            metrics.update({f"{selection}/{split}/{k}": v for k, v in values.items()})
    metrics["best_epoch"], metrics["oracle_epoch"] = (best[1] if len(data.val) else None), oracle[1]
    if not len(data.val):
        metrics["selection_note"] = "no validation split: best/ metrics absent; report last/ or oracle/"
    metrics["train_time_s"] = time.perf_counter() - start
    metrics["peak_mem_mb"] = _peak_memory_mb(device)
    return FitResult(metrics=metrics, history=history, resumed_from=first_epoch - 1 if saved else None)


def _score(value: float | None, sign: float) -> float:
    """Larger is better; a missing or NaN metric ranks last."""
    return -math.inf if value is None or math.isnan(value) else sign * value


def _peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated by this run, or the process's peak resident set size on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
