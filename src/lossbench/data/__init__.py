"""Datasets: every recipe returns a `DataSpec` of tensor splits."""

from lossbench.data.base import Dataset
from lossbench.data.longtail import longtail_counts
from lossbench.data.spec import DataSpec, Split

__all__ = ["DataSpec", "Dataset", "Split", "longtail_counts"]
