"""Imbalanced regression: recipes against independent float64 re-implementations of the authors' formulas."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from scipy import stats
from scipy.ndimage import convolve1d, gaussian_filter1d
from scipy.signal.windows import triang
from sklearn.metrics import mean_absolute_error, mean_squared_error

from lossbench import run
from lossbench.config import CONFIG_DIR, compose
from lossbench.losses.balanced_mse import BalancedMSELoss
from lossbench.metrics.regression import regression_metrics
from lossbench.tasks.base import MULTILABEL, MULTITASK, prepare
from lossbench.tasks.compatible import RECIPE_GROUPS, kinds_of, options_for, target_of
from lossbench.tasks.regression import RegressionTask
from lossbench.weighting.dense_weight import DenseWeighting
from lossbench.weighting.lds import LDSWeighting
from tests.conftest import ROOT

KINDS = ("classification", "regression")
ALL_KINDS = (*KINDS, MULTILABEL, MULTITASK)  # multi-label/multi-task preflight: tests/test_multitask_run.py
REG_LOSSES = options_for(CONFIG_DIR, "loss", "regression")
REG_WEIGHTINGS = options_for(CONFIG_DIR, "weighting", "regression")
# hand-made integer labels 0..7 (one bin per integer), strongly skewed; bin 6 is empty
LABELS = np.array([0] * 30 + [1] * 12 + [2] * 6 + [3] * 3 + [4] * 2 + [5] * 1 + [7] * 1, dtype=np.float64)


def integer_task(labels: np.ndarray, bins: int = 8) -> RegressionTask:
    edges = np.arange(bins + 1) - 0.5
    counts = np.bincount(labels.astype(int), minlength=bins)
    return RegressionTask(tuple(edges), tuple(counts.tolist()), many_threshold=10, few_threshold=3)


# ---- LDS: Yang et al. (ICML 2021), github YyzHarry/imbalanced-regression, datasets.py `_prepare_weights`
# and utils.py `get_lds_kernel_window`, re-written here in plain numpy/float64 with a per-label dict as there.
def yang_lds_weights(labels, max_target, reweight, kernel, ks, sigma):
    value_dict = {x: 0 for x in range(max_target)}
    for label in labels:
        value_dict[min(max_target - 1, int(label))] += 1
    if reweight == "sqrt_inv":
        value_dict = {k: np.sqrt(v) for k, v in value_dict.items()}
    else:  # inverse
        value_dict = {k: np.clip(v, 5, 1000) for k, v in value_dict.items()}
    half = (ks - 1) // 2
    if kernel == "gaussian":
        base = [0.0] * half + [1.0] + [0.0] * half
        window = gaussian_filter1d(base, sigma=sigma) / max(gaussian_filter1d(base, sigma=sigma))
    elif kernel == "triang":
        window = triang(ks)
    else:
        lap = [np.exp(-abs(x) / sigma) / (2.0 * sigma) for x in np.arange(-half, half + 1)]
        window = np.array(lap) / max(lap)
    smoothed = convolve1d(
        np.asarray(list(value_dict.values()), dtype=np.float64), weights=window, mode="constant"
    )
    per_label = [smoothed[min(max_target - 1, int(label))] for label in labels]
    weights = np.array([1.0 / x for x in per_label])
    return weights * len(weights) / weights.sum()


@pytest.mark.parametrize("reweight", ["sqrt_inv", "inverse"])
@pytest.mark.parametrize(
    ("kernel", "ks", "sigma"), [("gaussian", 5, 2.0), ("triang", 5, 1.0), ("laplace", 3, 1.5)]
)
def test_lds_matches_yang_et_al(reweight, kernel, ks, sigma):
    task = integer_task(LABELS)
    y = torch.as_tensor(LABELS, dtype=torch.float32)
    weighting = LDSWeighting(reweight=reweight, kernel=kernel, ks=ks, sigma=sigma)
    prepare(task, y, weighting)
    ours = weighting.target_weights.double()[task.groups(y)].numpy()
    np.testing.assert_allclose(ours, yang_lds_weights(LABELS, 8, reweight, kernel, ks, sigma), rtol=1e-6)


# ---- DenseWeight: Steininger et al. (Machine Learning 2021), eqs. 2-4: Gaussian KDE p, min-max
# normalised p', f = max(1 - alpha p', eps), divided by its mean. Re-implemented with scipy's KDE at
# Silverman's bandwidth (the denseweight package's default).
def steininger_weights(train, query, alpha, eps):
    n = len(train)
    iqr = np.subtract(*np.percentile(train, [75, 25]))
    h = 0.9 * min(np.std(train, ddof=1), iqr / 1.34) * n ** (-0.2)
    kde = stats.gaussian_kde(train, bw_method=h / np.std(train, ddof=1))
    dens_train = kde(train)
    lo, hi = dens_train.min(), dens_train.max()

    def f(y):
        return np.maximum(1 - alpha * (kde(y) - lo) / (hi - lo), eps)

    return f(query) / f(train).mean()


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 2.0])
def test_dense_weight_matches_steininger_et_al(alpha):
    rng = np.random.default_rng(0)
    train = np.concatenate([rng.normal(0, 1, 80), rng.normal(4, 0.5, 10)])
    query = np.linspace(-3, 6, 17)
    weighting = DenseWeighting(alpha=alpha, epsilon=1e-6)
    prepare(RegressionTask((-10.0, 10.0), (90,), 50, 5), torch.as_tensor(train), weighting)
    ours = weighting.example_weights(torch.as_tensor(query)).numpy()
    np.testing.assert_allclose(ours, steininger_weights(train, query, alpha, 1e-6), rtol=1e-9)
    assert weighting.example_weights(torch.as_tensor(train)).mean().item() == pytest.approx(1.0)


# ---- Balanced MSE: Ren et al. (CVPR 2022), github jiawei-ren/BalancedMSE, imdb-wiki-dir/balanaced_mse.py
# (`gai_loss`, `bmc_loss`, `bni_loss`), re-written in float64 torch on (N, 1) predictions; means over the batch.
def ren_gai(pred, target, means, variances, weights, var):
    mse = (pred - target) ** 2 / 2 / var + 0.5 * np.log(var)
    total = variances[None, :] + var
    bal = -0.5 * torch.log(total) - 0.5 * (pred - means[None, :]) ** 2 / total + torch.log(weights[None, :])
    return ((mse + torch.logsumexp(bal, dim=-1, keepdim=True)) * 2 * var).mean()


def ren_bmc(pred, target, var):
    logits = -0.5 * (pred - target.T) ** 2 / var
    return F.cross_entropy(logits, torch.arange(len(pred))) * 2 * var


def ren_bni(pred, target, var, centers, weights):
    mse = (pred - target) ** 2 / 2 / var
    bal = -0.5 * (pred.expand(-1, len(centers)) - centers[None, :]) ** 2 / var + torch.log(weights[None, :])
    return ((mse + torch.logsumexp(bal, dim=-1, keepdim=True)) * 2 * var).mean()


@pytest.mark.parametrize("method", ["gai", "bmc", "bni"])
@pytest.mark.parametrize("sigma", [0.5, 2.0])
def test_balanced_mse_matches_ren_et_al(method, sigma):
    task = integer_task(LABELS)
    target = torch.as_tensor(LABELS)[:, None]
    pred = (target + torch.linspace(-1.5, 1.5, len(LABELS), dtype=torch.float64)[:, None]).requires_grad_(
        True
    )
    loss = BalancedMSELoss(method=method, init_noise_sigma=sigma, learn_sigma=False).double()
    prepare(task, torch.as_tensor(LABELS), loss)
    ours = loss(pred, target[:, 0]).mean()
    var = sigma**2
    if method == "gai":
        means, variances, weights = loss.gmm  # fitted by scikit-learn in `fit`: the input, not the formula
        ref = ren_gai(pred, target, means, variances, weights, var)
    elif method == "bmc":
        ref = ren_bmc(pred, target, var)
    else:  # integer labels sit on the bin centres: the reference's setting
        counts = np.bincount(LABELS.astype(int), minlength=8)
        keep = counts > 0
        centers = torch.arange(8, dtype=torch.float64)[keep]
        ref = ren_bni(pred, target, var, centers, torch.as_tensor(counts[keep] / counts.sum()))
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    g_ours, g_ref = torch.autograd.grad(ours, pred)[0], torch.autograd.grad(ref, pred)[0]
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-9, atol=1e-12)


def test_bmc_rows_depend_on_the_batch_not_its_order():
    loss = BalancedMSELoss("bmc", 1.0)
    pred, y = torch.randn(9, 1, dtype=torch.float64), torch.randn(9, dtype=torch.float64)
    perm = torch.randperm(9)
    torch.testing.assert_close(loss.double()(pred[perm], y[perm]), loss.double()(pred, y)[perm])
    assert not torch.allclose(loss(pred[:4], y[:4]), loss(pred, y)[:4])  # coupled to the batch


def test_learnable_sigma_has_its_own_constant_rate():
    learned, fixed = BalancedMSELoss(learn_sigma=True, sigma_lr=1e-3), BalancedMSELoss(learn_sigma=False)
    assert learned.noise_sigma.requires_grad and learned.fixed_lr == 1e-3
    assert not fixed.noise_sigma.requires_grad and fixed.fixed_lr is None


# ---- contracts of every regression loss and weighting
@pytest.mark.parametrize("name", REG_LOSSES)
def test_regression_loss_contract(name):
    loss = instantiate(compose([f"loss={name}"]).loss, _convert_="all")
    y = torch.randn(16)
    prepare(RegressionTask(tuple(np.linspace(-4, 4, 9)), (2,) * 8, 3, 1), y, loss)
    out_ = torch.randn(16, 1, requires_grad=True)
    values = loss(out_, y)
    assert values.shape == (16,) and torch.isfinite(values).all()
    values.sum().backward()
    assert out_.grad is not None and torch.isfinite(out_.grad).all()
    perm = torch.randperm(16)
    torch.testing.assert_close(loss(out_[perm], y[perm]), loss(out_, y)[perm], rtol=1e-5, atol=1e-6)
    # a loss that says it is rowwise is computed for several stacked members at once (train/stacked.py)
    # (a loss saying it is not couples the examples of a batch: BMC)
    alone = loss(out_[:5], y[:5])
    assert torch.allclose(alone, values[:5], rtol=1e-5, atol=1e-6) == loss.rowwise, loss.rowwise


def test_focal_r_gamma_zero_is_the_base_loss_and_huber_is_smooth_l1():
    from lossbench.losses.focal_regression import FocalRegressionLoss
    from lossbench.losses.huber import HuberLoss

    p, y = torch.randn(10, 1), torch.randn(10)
    torch.testing.assert_close(FocalRegressionLoss("l1", gamma=0.0)(p, y), (p[:, 0] - y).abs())
    torch.testing.assert_close(FocalRegressionLoss("mse", gamma=0.0)(p, y), (p[:, 0] - y) ** 2)
    # focal_l1 hand-worked: |e| = 5, beta 0.2, gamma 1: 5 * (2 sigmoid(1) - 1)
    e5 = FocalRegressionLoss("l1")(torch.tensor([[5.0]]), torch.tensor([0.0]))
    assert e5.item() == pytest.approx(5 * (2 / (1 + np.exp(-1.0)) - 1))
    torch.testing.assert_close(HuberLoss(0.7)(p, y), F.smooth_l1_loss(p[:, 0], y, beta=0.7, reduction="none"))


@pytest.mark.parametrize("name", REG_WEIGHTINGS)
def test_regression_weighting_maps_constant_losses_to_the_constant(name):
    weighting = instantiate(compose([f"weighting={name}"]).weighting, _convert_="all")
    task = integer_task(LABELS)
    y = torch.as_tensor(LABELS, dtype=torch.float32)
    prepare(task, y, weighting)
    weighting.on_epoch_start(10**6)  # deferred recipes switch on
    out_ = weighting(torch.full((len(y),), 2.5), y, torch.zeros(len(y), 1), torch.zeros(len(y), 4))
    assert out_.item() == pytest.approx(2.5)


def test_inverse_frequency_on_bins_weighs_rare_bins_up():
    from lossbench.weighting.inverse_frequency import InverseFrequencyWeighting

    w = InverseFrequencyWeighting()
    y = torch.as_tensor(LABELS, dtype=torch.float32)
    prepare(integer_task(LABELS), y, w)
    losses = torch.zeros(len(y))
    losses[-1] = 1.0  # only the rarest label (7, one example) has a loss
    assert w(losses, y, None, None).item() > losses.mean().item() * 5


# ---- metrics against scikit-learn / scipy
def test_regression_metrics_match_references():
    rng = np.random.default_rng(1)
    y = LABELS + rng.normal(0, 0.1, len(LABELS))
    p = y + rng.normal(0, 0.8, len(LABELS))
    task = integer_task(LABELS)
    bins = task.groups(torch.as_tensor(y))
    m = regression_metrics(torch.as_tensor(p), torch.as_tensor(y), bins, list(task.group_counts), 10, 3)
    assert m["mse"] == pytest.approx(mean_squared_error(y, p))
    assert m["mae"] == pytest.approx(mean_absolute_error(y, p))
    assert m["gm"] == pytest.approx(stats.gmean(np.abs(p - y)))
    assert m["pearson"] == pytest.approx(stats.pearsonr(p, y)[0])
    b = bins.numpy()
    per_bin = [np.abs(p - y)[b == k].mean() for k in np.unique(b)]
    assert m["balanced_mae"] == pytest.approx(np.mean(per_bin))
    many = np.isin(b, np.flatnonzero(np.asarray(task.group_counts) > 10))
    assert m["many_mae"] == pytest.approx(np.abs(p - y)[many].mean())
    assert all(m[f"{g}_mae"] is not None for g in ("many", "medium", "few"))


# ---- compatibility: declared on every component, checked before training, for every task kind
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("group", RECIPE_GROUPS)
def test_every_option_declares_kinds_and_incompatible_ones_fail_in_one_line(group, kind):
    dataset = options_for(CONFIG_DIR, "dataset", kind)[0]
    for name in sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml")):
        supported = kinds_of(target_of(CONFIG_DIR, group, name))
        assert set(supported) <= set(ALL_KINDS), (group, name)
        cfg = compose([f"dataset={dataset}", f"{group}={name}", *_compatible_rest(group, kind)])
        if kind in supported:
            run.check_task_kinds(cfg)
        else:
            with pytest.raises(ValueError) as info:
                run.check_task_kinds(cfg)
            message = str(info.value)
            assert "\n" not in message and f"{group} {name!r}" in message
            assert all(o in message for o in options_for(CONFIG_DIR, group, kind))


def _compatible_rest(group, kind):
    """Overrides choosing options of the other recipe groups that support `kind`."""
    return [f"{g}={options_for(CONFIG_DIR, g, kind)[0]}" for g in RECIPE_GROUPS if g != group]


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["dataset=abalone_rings", "loss=ldam"], "regression losses: balanced_mse"),
     (["dataset=digits", "loss=mse"], "classification losses: "),
     (["dataset=cpu_performance", "loss=mse", "stage2=crt"], "regression stage2 options: none")],
)  # fmt: skip
def test_cli_rejects_incompatible_combinations_before_training(args, needle, tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "lossbench.cli", "run", *args, f"store.url=sqlite:///{tmp_path}/s.db"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lossbench: ") and needle in lines[0], res.stderr
    assert not (tmp_path / "s.db").exists()


# ---- end to end on the synthetic benchmark (each regression loss and weighting, one tiny run)
SMALL_REG = ["dataset=synthetic_regression", "dataset.n_train=160", "dataset.n_eval=80", "trainer=smoke",
             "trainer.lr=0.01", "store=memory"]  # fmt: skip


@pytest.mark.parametrize(
    "overrides",
    # weighting=none is the default: with `loss=mse` it is the same run (same id) as the first case
    [[f"loss={n}"] for n in REG_LOSSES]
    + [["loss=mse", f"weighting={w}"] for w in REG_WEIGHTINGS if w != "none"],
)
def test_one_tiny_regression_run_completes(overrides):
    cfg = compose([*SMALL_REG, *overrides])
    choices = {"dataset": "synthetic_regression", **dict(o.split("=", 1) for o in overrides)}
    assert run.run_cell(cfg, choices) == "completed"
