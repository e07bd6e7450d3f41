"""No second stage."""

from __future__ import annotations

from lossbench.data.spec import DataSpec
from lossbench.models.base import Classifier
from lossbench.stage2.base import Stage2
from lossbench.train.config import TrainerConfig
from lossbench.train.loop import FitResult


class NoStage2(Stage2):
    """The model of the main training is the final model; its record is unchanged."""

    def apply(self, model: Classifier, data: DataSpec, trainer: TrainerConfig, seed: int) -> FitResult | None:
        """Nothing to do."""
        return None
