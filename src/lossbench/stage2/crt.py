"""Classifier re-training (cRT)."""

from __future__ import annotations

import torch
from torch import nn

from lossbench.data.spec import DataSpec
from lossbench.losses.cross_entropy import CrossEntropyLoss
from lossbench.models.base import Classifier
from lossbench.samplers.class_balanced import ClassBalancedSampler
from lossbench.stage2.base import Stage2, check_positive, feature_dim, stage2_trainer
from lossbench.tasks.base import prepare
from lossbench.train.config import TrainerConfig
from lossbench.train.evaluate import Evaluator
from lossbench.train.loop import FitResult, fit, resolve_device
from lossbench.weighting.none import NoWeighting


class ClassifierRetraining(Stage2):
    """cRT (Kang et al., ICLR 2020): a fresh linear classifier trained on frozen features.

    As in the reference (facebookresearch/classifier-balancing, `cls_crt.yaml`): the feature
    extractor's parameters are frozen (`requires_grad_(False)`, so the one loop does not optimise
    them), the classifier is re-initialised as a linear layer `W h + b` (whatever head stage 1 used,
    e.g. LDAM's cosine head), and trained with plain cross-entropy, class-balanced sampling, SGD with
    the trainer's momentum and batch size, a cosine schedule from `lr` to 0 over `epochs` (10 there).
    The model stays in train mode as in the reference, so BatchNorm statistics and dropout behave as
    in stage 1. The head is initialised from `seed`.

    Args:
        epochs: Re-training epochs (>= 1).
        lr: Initial learning rate (> 0); the reference re-uses the stage-1 rate.
        weight_decay: Weight decay of the classifier (>= 0).
    """

    def __init__(self, epochs: int = 10, lr: float = 0.1, weight_decay: float = 5e-4) -> None:
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        check_positive(lr=lr)
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.epochs, self.lr, self.weight_decay = int(epochs), float(lr), float(weight_decay)

    def apply(
        self, model: Classifier, data: DataSpec, trainer: TrainerConfig, seed: int, evaluator: Evaluator
    ) -> FitResult:
        """Freeze everything, install and train a fresh linear head."""
        device = resolve_device(trainer.device)
        model.to(device)
        model.requires_grad_(False)
        width = feature_dim(model, data, device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model.head = nn.Linear(width, data.num_classes).to(device)
        loss, weighting, sampler = CrossEntropyLoss(), NoWeighting(), ClassBalancedSampler()
        prepare(data.task, data.train.y, loss, weighting, sampler)
        cfg = stage2_trainer(trainer, self.epochs, self.lr, self.weight_decay)
        return fit(model, loss, weighting, sampler, data, cfg, seed=seed, evaluator=evaluator)
