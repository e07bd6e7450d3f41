"""lossbench: compare loss functions x weighting recipes x datasets, fairly and fast."""

__version__ = "0.1.0"
