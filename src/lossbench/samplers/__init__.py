"""Samplers: `Sampler` subclasses named by `configs/sampler/*.yaml`."""

from lossbench.samplers.base import Sampler

__all__ = ["Sampler"]
