"""Balanced MSE (Ren et al., CVPR 2022): GAI, BMC and BNI, with a learnable or fixed noise scale."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from lossbench.losses.base import Loss
from lossbench.losses.regression import REGRESSION_ONLY, residuals
from lossbench.tasks.base import Task

METHODS = ("gai", "bmc", "bni")


class BalancedMSELoss(Loss):
    """Balanced MSE: the MSE of a balanced label distribution, `-log p_bal(y | p)` per example.

    Follows Ren et al.'s reference (github jiawei-ren/BalancedMSE, `imdb-wiki-dir/balanaced_mse.py`),
    with `v = sigma^2` the noise variance, `e = p - y`, and every loss multiplied by `2 v` (detached)
    as there, so its gradient has the scale of the MSE's:

    * ``gai`` (GMM-based analytical integration): `e^2 / (2v) + log(v) / 2 + logsumexp_k(log pi_k
      - log(var_k + v) / 2 - (p - mu_k)^2 / (2 (var_k + v)))`, with a K-component Gaussian mixture
      fitted to the training targets in `fit` (scikit-learn, `random_state=0`, as in their
      `preprocess_gmm.py`).
    * ``bni`` (bin-based numerical integration): `e^2 / (2v) + logsumexp_b(log w_b - (p - c_b)^2 /
      (2v))` over the task's non-empty label bins (centres `c_b`, weights `w_b` = training counts
      normalised to sum 1, their `get_bucket_info` without LDS).
    * ``bmc`` (batch-based Monte-Carlo): the cross-entropy of the logits `-(p_i - y_j)^2 / (2v)`
      over the batch's targets j, with i's own target as the class.

    BMC couples the examples of a batch: it uses the other targets of the batch as samples of the
    training label distribution. Our per-example contract keeps that: example i's loss is row i of
    the reference's cross-entropy (it depends on the batch's targets, not on their order), and the
    reference's `mean` is the weighting's reduction, so `weighting=none` reproduces the reference
    exactly; a weighting re-weights rows. GAI and BNI are independent per example.

    `sigma` is a parameter trained by the one optimizer when `learn_sigma` (the reference's default),
    at the constant learning rate `sigma_lr` (their `--sigma_lr` 1e-2, which their schedule skips;
    null: the trainer's scheduled rate), else fixed (their `--fix_noise_sigma`). Their 1e-2 is an
    Adam rate (a step of about 1e-2 whatever the gradient); our one optimizer is SGD, whose step is
    the rate times the gradient (tens here), so the YAML uses 1e-4. sigma must start small against
    the label spread: when sigma is much wider than the targets, BMC and GAI become linear in the
    prediction and the predictions drift without bound (the YAML starts at 0.1 standardised units).

    One departure, for BNI: the outermost non-empty buckets are centred on the smallest and largest
    training target instead of their bins' mid-points. With the reference's integer labels every
    target sits on a bucket centre; with continuous targets one above the last centre makes the
    objective fall without bound as its prediction grows (the balancing term then cancels the
    quadratic), and training drifts off. Targets inside the centres' span keep it bounded below.

    Args:
        method: ``"gai"``, ``"bmc"`` or ``"bni"``.
        init_noise_sigma: Initial sigma (> 0), in target units; 1 in their code.
        learn_sigma: Train sigma jointly (True) or keep it fixed.
        components: Gaussian mixture components for GAI (>= 1); 8 in their code.
        sigma_lr: Constant learning rate of sigma (> 0), or None for the trainer's schedule.
    """

    task_kinds = REGRESSION_ONLY
    gmm: Tensor  # (3, K): means, variances, weights
    buckets: Tensor  # (2, B'): centres and weights of the non-empty bins

    def __init__(
        self,
        method: str = "bmc",
        init_noise_sigma: float = 1.0,
        learn_sigma: bool = True,
        components: int = 8,
        sigma_lr: float | None = 1e-2,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if not init_noise_sigma > 0 or components < 1:
            raise ValueError(
                f"need init_noise_sigma > 0 and components >= 1, got {init_noise_sigma}, {components}"
            )
        if sigma_lr is not None and not sigma_lr > 0:
            raise ValueError(f"sigma_lr must be > 0 or null, got {sigma_lr}")
        self.method, self.components = method, int(components)
        self.rowwise = method != "bmc"  # type: ignore[misc]  # BMC reads the other targets of its batch
        self.fixed_lr = float(sigma_lr) if learn_sigma and sigma_lr is not None else None
        self.noise_sigma = nn.Parameter(
            torch.tensor(float(init_noise_sigma)), requires_grad=bool(learn_sigma)
        )
        self.register_buffer("gmm", torch.zeros(3, 0))
        self.register_buffer("buckets", torch.zeros(2, 0))

    def fit(self, task: Task, targets: Tensor) -> None:
        """GAI: fit the Gaussian mixture to the training targets; BNI: keep the bins' centres and weights."""
        if self.method == "gai":
            from sklearn.mixture import GaussianMixture

            y = targets.double().reshape(-1, 1).cpu().numpy()
            gmm = GaussianMixture(n_components=min(self.components, len(y)), random_state=0).fit(y)
            params = np.stack([gmm.means_.reshape(-1), gmm.covariances_.reshape(-1), gmm.weights_])
            self.gmm = torch.as_tensor(params, dtype=torch.float64)
        elif self.method == "bni":
            centers = getattr(task, "bin_centers", None)
            if centers is None:
                raise ValueError("balanced_mse method=bni needs a regression task with label bins")
            counts = torch.as_tensor(task.group_counts, dtype=torch.float64)
            keep = counts > 0
            centers = centers[keep].clone()
            centers[0] = min(float(centers[0]), float(targets.min()))
            centers[-1] = max(float(centers[-1]), float(targets.max()))
            self.buckets = torch.stack([centers, counts[keep] / counts[keep].sum()])

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-example losses (N,)."""
        pred = logits.reshape(-1)
        var = self.noise_sigma.to(pred.dtype) ** 2
        if self.method == "bmc":
            scores = -0.5 * (pred[:, None] - targets.to(pred.dtype)[None, :]).square() / var
            loss = torch.logsumexp(scores, dim=1) - scores.diagonal()
        elif self.method == "gai":
            if self.gmm.numel() == 0:
                raise RuntimeError(
                    "BalancedMSELoss(method='gai').fit(task, targets) must be called before use"
                )
            mean, gvar, weight = self.gmm.to(pred.dtype)
            total = gvar + var
            balancing = weight.log() - 0.5 * total.log() - 0.5 * (pred[:, None] - mean).square() / total
            loss = residuals(logits, targets).square() / (2 * var) + 0.5 * var.log()
            loss = loss + torch.logsumexp(balancing, dim=1)
        else:
            if self.buckets.numel() == 0:
                raise RuntimeError(
                    "BalancedMSELoss(method='bni').fit(task, targets) must be called before use"
                )
            centers, weight = self.buckets.to(pred.dtype)
            balancing = weight.log() - 0.5 * (pred[:, None] - centers).square() / var
            loss = residuals(logits, targets).square() / (2 * var) + torch.logsumexp(balancing, dim=1)
        return loss * (2 * var).detach()
