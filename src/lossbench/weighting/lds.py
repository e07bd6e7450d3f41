"""Label distribution smoothing (Yang et al., ICML 2021): inverse of kernel-smoothed bin counts."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lossbench.tasks.base import REGRESSION, Task
from lossbench.weighting.base import ClassWeighting

KERNELS = ("gaussian", "triang", "laplace")


def lds_kernel(kernel: str, ks: int, sigma: float) -> np.ndarray:
    """The peak-normalised smoothing window (ks,) of Yang et al.'s `get_lds_kernel_window`.

    gaussian: scipy's `gaussian_filter1d` of a unit impulse of length ks (reflect mode, as there);
    triang: `scipy.signal.windows.triang(ks)`; laplace: `exp(-|x| / sigma)` at x = -(ks-1)/2 ... (ks-1)/2.
    """
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal.windows import triang

    half = (ks - 1) // 2
    if kernel == "gaussian":
        window = gaussian_filter1d(np.eye(1, ks, half).ravel(), sigma=sigma)
    elif kernel == "triang":
        window = triang(ks)
    else:
        window = np.exp(-np.abs(np.arange(-half, half + 1)) / sigma)
    return window / window.max()


class LDSWeighting(ClassWeighting):
    """Per-bin weights `1 / smoothed count`, normalised to mean 1 over the training examples.

    In the order of Yang et al.'s `_prepare_weights` (github YyzHarry/imbalanced-regression): the
    training count of each label bin is first transformed (`sqrt_inv`: square root; `inverse`:
    clipped to [5, 1000]), then convolved with the peak-normalised kernel (`lds_kernel`, zero
    padding at the ends: `convolve1d(mode="constant")`), and each example weighted by the inverse of
    its bin's smoothed value; weights are scaled so their mean over the training set is 1. The bins
    are the task's label bins (one per integer age there). The reduction is the weighted mean of
    every `ClassWeighting`, so the mean-1 scaling only fixes `target_weights`' scale.

    Args:
        reweight: ``"sqrt_inv"`` or ``"inverse"`` (counts clipped to [5, 1000] first).
        kernel: ``"gaussian"``, ``"triang"`` or ``"laplace"``.
        ks: Kernel size in bins (odd, >= 1); 5 in their code.
        sigma: Kernel width in bins (> 0); 2 in their code.
        smooth: Apply the kernel (False: plain sqrt-inverse / clipped-inverse bin weights).
    """

    task_kinds = (REGRESSION,)

    def __init__(
        self,
        reweight: str = "sqrt_inv",
        kernel: str = "gaussian",
        ks: int = 5,
        sigma: float = 2.0,
        smooth: bool = True,
    ) -> None:
        super().__init__()
        if reweight not in ("sqrt_inv", "inverse"):
            raise ValueError(f"reweight must be sqrt_inv or inverse, got {reweight!r}")
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
        if ks < 1 or ks % 2 == 0 or not sigma > 0:
            raise ValueError(f"ks must be odd and >= 1 and sigma > 0, got {ks}, {sigma}")
        self.reweight, self.kernel, self.ks, self.sigma, self.smooth = (
            reweight,
            kernel,
            int(ks),
            float(sigma),
            smooth,
        )

    def smoothed_counts(self, counts: np.ndarray) -> np.ndarray:
        """The transformed, smoothed counts (B,) of raw bin counts (B,)."""
        from scipy.ndimage import convolve1d

        values = np.sqrt(counts) if self.reweight == "sqrt_inv" else np.clip(counts, 5, 1000)
        if not self.smooth:
            return values
        return convolve1d(values, weights=lds_kernel(self.kernel, self.ks, self.sigma), mode="constant")

    def compute_weights(self, counts: Tensor) -> Tensor:
        """`1 / smoothed count` per bin (0 for a bin whose smoothed count is 0: no example uses it)."""
        smoothed = torch.as_tensor(self.smoothed_counts(counts.double().numpy()))
        return torch.where(smoothed > 0, 1.0 / smoothed.clamp(min=1e-300), torch.zeros_like(smoothed))

    def fit(self, task: Task, targets: Tensor) -> None:
        """Bin weights from the raw training counts, scaled to mean 1 over the training examples."""
        counts = torch.as_tensor(task.group_counts, dtype=torch.float64)
        w = self.compute_weights(counts)
        self.target_weights = (w * counts.sum() / (w * counts).sum()).float()
        self.task = task
