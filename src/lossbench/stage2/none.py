"""No second stage."""

from __future__ import annotations

from lossbench.data.spec import DataSpec
from lossbench.models.base import Classifier
from lossbench.stage2.base import Stage2
from lossbench.tasks.base import CLASSIFICATION, REGRESSION
from lossbench.train.config import TrainerConfig
from lossbench.train.evaluate import Evaluator
from lossbench.train.loop import FitResult


class NoStage2(Stage2):
    """The model of the main training is the final model; its record is unchanged."""

    task_kinds = (CLASSIFICATION, REGRESSION)

    def apply(
        self, model: Classifier, data: DataSpec, trainer: TrainerConfig, seed: int, evaluator: Evaluator
    ) -> FitResult | None:
        """Nothing to do."""
        return None
