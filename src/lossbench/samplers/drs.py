"""Deferred re-sampling."""

from __future__ import annotations

import torch
from torch import Tensor

from lossbench.samplers.by_class import ClassProbabilitySampler
from lossbench.weighting.base import effective_number_weights


class DeferredResampler(ClassProbabilitySampler):
    """DRS (Cao et al., NeurIPS 2019): instance sampling until `start_epoch`, then re-sampling.

    Before `start_epoch` each epoch is a random permutation (every example once). From `start_epoch`
    on, examples are drawn with replacement with per-example weight `(1 - beta) / (1 - beta^n_y)`, as
    the LDAM-DRW reference's `ImbalancedDatasetSampler` does (beta = 0.9999 there), i.e. class
    probability `p_c ∝ n_c (1 - beta) / (1 - beta^n_c)`. `beta = 1` (its limit) is exactly
    class-balanced; at beta = 0.9999 and a few hundred examples per class it is within 1-3 % of it.

    Args:
        start_epoch: First (0-based) re-sampled epoch (>= 0).
        beta: Effective-number hyper-parameter of the re-sampling weights, in [0, 1].
    """

    def __init__(self, start_epoch: int = 160, beta: float = 0.9999) -> None:
        if start_epoch < 0:
            raise ValueError(f"start_epoch must be >= 0, got {start_epoch}")
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        self.start_epoch, self.beta = int(start_epoch), float(beta)

    def class_probabilities(self, epoch: int) -> Tensor:
        """`n_c / N` before `start_epoch`, then `∝ n_c (1 - beta) / (1 - beta^n_c)`."""
        if epoch < self.start_epoch:
            return self.instance_probabilities()
        if self.beta == 1.0:
            return self.balanced_probabilities()
        counts = self.class_counts.double()
        mass = counts * effective_number_weights(counts.clamp(min=1.0), self.beta)
        mass = mass * (counts > 0)
        return mass / mass.sum()

    def epoch_indices(self, epoch: int, generator: torch.Generator) -> Tensor:
        """A permutation before `start_epoch`; class-first draws from then on."""
        if epoch < self.start_epoch:
            return torch.randperm(self.num_examples, generator=generator)
        return super().epoch_indices(epoch, generator)
