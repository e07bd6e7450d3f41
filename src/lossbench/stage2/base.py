"""The second-stage contract: change a trained model in place, then report the final model's metrics."""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from lossbench.data.spec import DataSpec
from lossbench.models.base import Classifier
from lossbench.models.heads import NormedLinear
from lossbench.tasks.base import CLASSIFICATION, Task
from lossbench.train.config import TrainerConfig
from lossbench.train.evaluate import Evaluator
from lossbench.train.loop import Diverged, FitResult


class Stage2(ABC):
    """A recipe applied after the main training: classifier re-training or a post-hoc adjustment.

    `fit(task, targets)` sees the training statistics (the one signature every recipe shares; called
    by `tasks.base.prepare`). `apply(model, data, trainer, seed, evaluator)` changes `model` in
    place (re-trained or replaced/wrapped head, so the evaluator sees the change) and returns the
    metrics of the final model as a `FitResult`, or None if it left the model as it was. `evaluator`
    is the run's one evaluator (the loop's), so both stages score alike and skip an empty val split.
    `task_kinds` are the task kinds it supports (classification unless a stage says otherwise). A re-training stage returns what its `train.loop.fit` call
    returned (last/best/oracle over its own epochs); a post-hoc stage returns `evaluate_final(...)`
    (`last/...` only: the stage-1 best and oracle epochs were never adjusted). `run` calls `apply`
    and merges both stages into one record (see `merge`).
    """

    task_kinds: ClassVar[tuple[str, ...]] = (CLASSIFICATION,)

    def fit(self, task: Task, targets: Tensor) -> None:  # noqa: B027 (an optional hook)
        """See the training statistics: the task and the training targets (N,). Default: nothing."""

    @abstractmethod
    def apply(
        self, model: Classifier, data: DataSpec, trainer: TrainerConfig, seed: int, evaluator: Evaluator
    ) -> FitResult | None:
        """Change `model` in place; the metrics of the final model (None: model unchanged)."""

    def run(
        self,
        model: Classifier,
        data: DataSpec,
        trainer: TrainerConfig,
        seed: int,
        stage1: FitResult,
        evaluator: Evaluator,
    ) -> FitResult:
        """Apply this stage to the model trained in `stage1`; the record of both stages."""
        try:
            stage2 = self.apply(model, data, trainer, seed, evaluator)
        except Diverged as exc:
            history = stage1.history + _shift(exc.history, trainer.epochs)
            raise Diverged(trainer.epochs + exc.epoch, float("nan"), history) from exc
        return stage1 if stage2 is None else merge(stage1, stage2, trainer.epochs)


def merge(stage1: FitResult, stage2: FitResult, offset: int) -> FitResult:
    """Metrics of the final model, stage-1 metrics under `stage1/...`, histories end to end.

    Stage-2 history rows get epoch `offset + e` and `stage: 2`; times add up, peak memory is the max.
    """
    metrics: dict[str, Any] = {f"stage1/{k}": v for k, v in stage1.metrics.items()}
    metrics.update(stage2.metrics)
    metrics["train_time_s"] = stage1.metrics.get("train_time_s", 0.0) + stage2.metrics.get(
        "train_time_s", 0.0
    )
    metrics["peak_mem_mb"] = max(
        stage1.metrics.get("peak_mem_mb", 0.0), stage2.metrics.get("peak_mem_mb", 0.0)
    )
    return FitResult(metrics=metrics, history=stage1.history + _shift(stage2.history, offset))


def _shift(rows: list[dict[str, Any]], offset: int) -> list[dict[str, Any]]:
    return [{**row, "epoch": offset + int(row["epoch"]), "stage": 2} for row in rows]


def evaluate_final(
    model: nn.Module,
    evaluator: Evaluator,
    started: float,
    logit_scale: float = 1.0,
    **extra: float,
) -> FitResult:
    """`last/{split}/{name}` of the (adjusted) final model on the non-empty splits, plus `extra` under `stage2/...`.

    `logit_scale` is the stage-1 loss's scale (see `Loss.logit_scale`) where the stage keeps its logits.
    """
    metrics: dict[str, Any] = {}
    for split, values in evaluator.evaluate(model, logit_scale=logit_scale).items():
        metrics.update({f"last/{split}/{k}": v for k, v in values.items()})
    metrics.update({f"stage2/{k}": v for k, v in extra.items()})
    metrics["train_time_s"] = time.perf_counter() - started
    return FitResult(metrics=metrics)


def stage2_trainer(trainer: TrainerConfig, epochs: int, lr: float, weight_decay: float) -> TrainerConfig:
    """The stage-1 trainer settings with a cosine schedule from `lr` over `epochs`, no warm-up."""
    return dataclasses.replace(trainer, epochs=epochs, lr=lr, weight_decay=weight_decay, warmup_epochs=0,
                               schedule="cosine", lr_milestones=[], lr_factors=[])  # fmt: skip


def check_positive(**values: float) -> None:
    """Raise `ValueError` for the first value that is not > 0."""
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")


def check_linear_head(head: str, recipe: str) -> None:
    """Reject a cosine head for recipes that act on the classifier's weight norms."""
    if head == "normed":
        raise ValueError(
            f"{recipe} acts on the norms of the classifier weights, which a cosine (normed) head "
            "normalises away; use model.head=linear (loss=ldam selects normed by default)"
        )


def linear_head(model: Classifier, recipe: str) -> nn.Linear:
    """The model's head if it is an `nn.Linear` (rows = classes); a clear error otherwise."""
    head = model.head
    if isinstance(head, NormedLinear):
        check_linear_head("normed", recipe)
    if not isinstance(head, nn.Linear):
        raise ValueError(f"{recipe} needs a linear classifier head, got {type(head).__name__}")
    return head


def feature_dim(model: Classifier, data: DataSpec, device: torch.device) -> int:
    """Width D of the model's penultimate features."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        width = model.features(data.train.x[:1].to(device)).flatten(1).shape[1]
    model.train(was_training)
    return int(width)
