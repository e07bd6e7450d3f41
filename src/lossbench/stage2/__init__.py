"""Second stages and post-hoc adjustments: `Stage2` subclasses named by `configs/stage2/*.yaml`."""

from lossbench.stage2.base import Stage2

__all__ = ["Stage2"]
