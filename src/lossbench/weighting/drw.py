"""Deferred re-weighting."""

from __future__ import annotations

from torch import Tensor

from lossbench.weighting.base import ClassWeighting, check_beta, effective_number_weights


class DeferredReweighting(ClassWeighting):
    """DRW (Cao et al., NeurIPS 2019): uniform weights until `start_epoch`, then effective-number weights.

    As in the LDAM-DRW reference (`idx = epoch // 160; betas = [0, 0.9999]`), epochs are 0-based and
    the switch happens at the start of epoch `start_epoch`. `target_weights` holds the deferred weights.

    Args:
        start_epoch: First (0-based) epoch that uses the class-balanced weights (>= 0).
        beta: Effective-number hyper-parameter of the deferred weights, in [0, 1).
    """

    def __init__(self, start_epoch: int = 160, beta: float = 0.9999) -> None:
        super().__init__()
        if start_epoch < 0:
            raise ValueError(f"start_epoch must be >= 0, got {start_epoch}")
        check_beta(beta)
        self.start_epoch, self.beta = int(start_epoch), float(beta)
        self.active = start_epoch == 0

    def compute_weights(self, counts: Tensor) -> Tensor:
        """Inverse effective numbers (the weights used from `start_epoch`)."""
        return effective_number_weights(counts, self.beta)

    def on_epoch_start(self, epoch: int) -> None:
        """Switch the class weights on at `start_epoch`."""
        self.active = epoch >= self.start_epoch
