"""Second stages and post-hoc adjustments: `Stage2` subclasses named by `configs/stage2/*.yaml`."""
