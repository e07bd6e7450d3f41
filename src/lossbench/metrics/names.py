"""Metric names and directions, shared by training (model selection) and the report (bolding).

Torch-free on purpose: `lossbench.report` imports it and must never import torch.
"""

# metric name (last path component of `split/name`) -> higher is better
HIGHER_IS_BETTER = {
    "acc": True, "balanced_acc": True, "macro_f1": True, "worst_class_acc": True,
    "many_acc": True, "medium_acc": True, "few_acc": True, "nll": False, "ece": False,
    "train_time_s": False, "peak_mem_mb": False, "duration_s": False,
    # regression (errors: lower is better; Pearson r: higher)
    "mse": False, "mae": False, "gm": False, "balanced_mse": False, "balanced_mae": False, "pearson": True,
    "many_mae": False, "medium_mae": False, "few_mae": False, "many_mse": False, "medium_mse": False,
    "few_mse": False, "many_gm": False, "medium_gm": False, "few_gm": False,
}  # fmt: skip

# multi-label metrics (metrics/multilabel.py) and multi-task summaries (report/multitask.py)
HIGHER_IS_BETTER.update({
    "map": True, "micro_f1": True, "cp": True, "cr": True, "cf1": True, "op": True, "or": True, "of1": True,
    "mean_acc": True, "delta_p": True,
})  # fmt: skip


def higher_is_better(metric: str) -> bool:
    """The direction of `metric` (`val/balanced_mae` or `balanced_mae`), by its last path component.

    A name not in `HIGHER_IS_BETTER` counts as higher-is-better.
    """
    return HIGHER_IS_BETTER.get(metric.rsplit("/", 1)[-1], True)
