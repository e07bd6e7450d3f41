"""Tau-normalised classifier."""

from __future__ import annotations

import time

import torch
from torch import Tensor, nn

from lossbench.data.spec import DataSpec
from lossbench.metrics.names import higher_is_better
from lossbench.models.base import Classifier
from lossbench.stage2.base import Stage2, check_linear_head, evaluate_final, linear_head
from lossbench.train.config import TrainerConfig
from lossbench.train.evaluate import Evaluator
from lossbench.train.loop import FitResult

# Kang et al.'s search grid (tau_norm.py: np.linspace(0, 2, 21)).
TAU_GRID = tuple(round(0.1 * i, 1) for i in range(21))


def tau_normalized(weight: Tensor, tau: float) -> Tensor:
    """Rows (classes) `w_c / ||w_c||_2^tau` of a (C, D) weight matrix."""
    return weight / weight.norm(dim=1, keepdim=True).pow(tau)


class TauNormalization(Stage2):
    """Tau-normalisation (Kang et al., ICLR 2020): classifier weights `w_c / ||w_c||^tau`, no bias.

    The head becomes `h -> W_tau h` with `W_tau = tau_normalized(W, tau)`; as in the reference
    (`tau_norm.py`, which scores `feat @ pnorm(weights, p).T`), the bias is dropped. `tau=0` keeps the
    weights (bias dropped), `tau=1` gives unit-norm class weights. Kang et al. pick tau on a
    validation set; `tau="auto"` does that here: the tau of their grid 0, 0.1, ..., 2 with the best
    `trainer.select_metric` on the validation split (first of ties), recorded as `stage2/tau`.

    A cosine (`normed`) head already normalises its weights, so tau has no effect there: that
    combination is rejected when the config is composed (`head` is the model config's `head`).

    Args:
        tau: Exponent (>= 0), or ``"auto"`` to select it on the validation split.
        head: The model's head kind (`linear` or `normed`), interpolated from the model config.
    """

    def __init__(self, tau: float | str = 1.0, head: str = "linear") -> None:
        if isinstance(tau, str):
            if tau != "auto":
                raise ValueError(f"tau must be a number >= 0 or 'auto', got {tau!r}")
        elif not tau >= 0:
            raise ValueError(f"tau must be >= 0 or 'auto', got {tau}")
        check_linear_head(head, "tau_norm")
        self.tau = tau if isinstance(tau, str) else float(tau)

    def apply(
        self, model: Classifier, data: DataSpec, trainer: TrainerConfig, seed: int, evaluator: Evaluator
    ) -> FitResult:
        """Replace the head by its tau-normalised, bias-free copy."""
        started = time.perf_counter()
        weight = linear_head(model, "tau_norm").weight.detach().clone()
        tau = self.select(model, weight, trainer, evaluator) if self.tau == "auto" else float(self.tau)
        model.head = _bias_free(tau_normalized(weight, tau))
        return evaluate_final(model, evaluator, started, tau=tau)

    def select(
        self, model: Classifier, weight: Tensor, trainer: TrainerConfig, evaluator: Evaluator
    ) -> float:
        """The grid tau with the best validation `select_metric`; ValueError if there is no validation split."""
        if not evaluator.splits(("val",)):
            raise ValueError(
                "tau_norm with tau=auto selects tau on the validation split, which is empty "
                "(dataset.val_per_class=0 or val_fraction=0); set stage2.tau to a number or give the dataset a validation split"
            )
        name = (trainer.select_metric or evaluator.select_metric).split("/", 1)[1]
        sign = 1.0 if higher_is_better(name) else -1.0
        best, best_tau = -float("inf"), 0.0
        for tau in TAU_GRID:
            model.head = _bias_free(tau_normalized(weight, tau))
            score = sign * evaluator.evaluate(model, ("val",))["val"][name]
            if score > best:
                best, best_tau = score, tau
        return best_tau


def _bias_free(weight: Tensor) -> nn.Linear:
    head = nn.Linear(weight.shape[1], weight.shape[0], bias=False).to(weight.device)
    with torch.no_grad():
        head.weight.copy_(weight)
    head.requires_grad_(False)
    return head
