"""Multi-task loss weighting: one module per method (configs/task_weighting/ is the registry)."""
