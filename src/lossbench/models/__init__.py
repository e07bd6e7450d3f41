"""Models: `Classifier` subclasses built from `configs/model/*.yaml`."""

from lossbench.models.base import Classifier

__all__ = ["Classifier"]
