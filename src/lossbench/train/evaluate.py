"""Evaluation: model outputs for a split, then every metric of the task. One `Evaluator` per run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lossbench.data.spec import DataSpec, Split
from lossbench.train.config import TrainerConfig
from lossbench.train.fast import cpu_eval_batch, inference_model, is_compiled, map_on_threads, uses_conv

SPLITS = ("val", "test")


@torch.inference_mode()
def predict(model: nn.Module, x: Tensor, batch_size: int | None, device: torch.device) -> Tensor:
    """Outputs (N, W) on the CPU, computed in eval mode in chunks of `batch_size`.

    `batch_size=None` sizes the chunks for the model (`fast.cpu_eval_batch`, for CPUs), and a conv
    net's chunks then run side by side, one per intra-op thread (`fast.map_on_threads`). BatchNorm
    is folded into the convolutions before it for the pass (`fast.inference_model`).
    """
    was_training = model.training
    model.eval()
    probe = x[:4].to(device)
    sized = batch_size is None
    if batch_size is None:
        batch_size = cpu_eval_batch(model, probe) if len(x) else 1
    infer = inference_model(model, probe) if len(x) else model

    def chunk(i: int) -> Tensor:
        return infer(x[i : i + batch_size].to(device, non_blocking=True)).float().cpu()

    starts = range(0, len(x), batch_size)
    if sized and device.type == "cpu" and uses_conv(model) and not is_compiled(model):
        out = map_on_threads(chunk, starts)
    else:
        out = [chunk(i) for i in starts]
    model.train(was_training)
    return torch.cat(out)


@dataclass(frozen=True)
class Evaluator:
    """Scores a model on the splits of one `DataSpec` with one set of evaluation settings.

    Built once per run (`Evaluator.of(data, trainer, device)`) and used by the training loop and by
    every second stage, so they score the same way. Empty splits (a paper protocol with
    `val_per_class=0`) are skipped: `evaluate(model)` returns only the non-empty ones.

    Attributes:
        data: The dataset (its `task` computes the metrics).
        device: Where the model runs.
        batch_size: Evaluation batch size (None: sized per model for a CPU, `fast.cpu_eval_batch`).
        many_threshold: Many-shot threshold (training examples per class or bin).
        few_threshold: Few-shot threshold.
        ece_bins: Confidence bins of the calibration error (classification).
    """

    data: DataSpec
    device: torch.device
    batch_size: int | None
    many_threshold: int
    few_threshold: int
    ece_bins: int = 15

    @classmethod
    def of(cls, data: DataSpec, trainer: TrainerConfig, device: torch.device) -> Evaluator:
        """The evaluator with the trainer's settings (null shot thresholds: the task's defaults)."""
        many = data.task.many_threshold if trainer.many_threshold is None else trainer.many_threshold
        few = data.task.few_threshold if trainer.few_threshold is None else trainer.few_threshold
        batch = (
            None if trainer.eval_batch_size is None and device.type != "cuda" else trainer.eval_batch(device)
        )
        return cls(data, device, batch, many, few, trainer.ece_bins)

    @property
    def select_metric(self) -> str:
        """The task's default selection metric, e.g. `val/acc` or `val/mae`."""
        return self.data.task.select_metric

    def splits(self, names: tuple[str, ...] = SPLITS) -> tuple[str, ...]:
        """The non-empty splits among `names`."""
        return tuple(name for name in names if len(getattr(self.data, name)))

    def split(self, model: nn.Module, split: Split, logit_scale: float = 1.0) -> dict[str, Any]:
        """Every metric of `model` on `split`; `logit_scale` multiplies the outputs first.

        `logit_scale` is the training loss's `Loss.logit_scale` (e.g. LDAM's `s`), so NLL and ECE
        measure the distribution the model was trained to predict.
        """
        return self.scores(predict(model, split.x, self.batch_size, self.device), split, logit_scale)

    def scores(self, outputs: Tensor, split: Split, logit_scale: float = 1.0) -> dict[str, Any]:
        """Every metric of model outputs (N, W) on `split` (the stacked trainer computes the outputs itself)."""
        return self.data.task.metrics(
            outputs * logit_scale, split.y, self.many_threshold, self.few_threshold, ece_bins=self.ece_bins
        )

    def scores_stacked(
        self, outputs: Tensor, split: Split, logit_scales: list[float]
    ) -> list[dict[str, Any]]:
        """`scores` of K models at once: outputs (K, N, W), member k's scaled by `logit_scales[k]`."""
        scales = torch.tensor(logit_scales, dtype=outputs.dtype).view(-1, *([1] * (outputs.dim() - 1)))
        return self.data.task.metrics_stacked(
            outputs * scales, split.y, self.many_threshold, self.few_threshold, ece_bins=self.ece_bins
        )

    def evaluate(
        self, model: nn.Module, names: tuple[str, ...] = SPLITS, logit_scale: float = 1.0
    ) -> dict[str, dict[str, Any]]:
        """`{split: metrics}` for each non-empty split of `names`."""
        model.to(self.device)
        return {name: self.split(model, getattr(self.data, name), logit_scale) for name in self.splits(names)}
