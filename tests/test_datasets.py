import numpy as np
import pytest
import yaml
from hydra.utils import instantiate

from lossbench.config import CONFIG_DIR, compose, options
from lossbench.data import longtail_counts
from lossbench.data.spec import DataSpec
from lossbench.tasks.base import MULTILABEL, MULTITASK
from lossbench.tasks.compatible import kind_of_dataset, target_of
from tests.conftest import options_for


def _needs_files(name):
    return "root" in yaml.safe_load((CONFIG_DIR / "dataset" / f"{name}.yaml").read_text())


def _single_label(name):
    # multi-task / multi-label datasets have their own tests (tests/test_multi_items.py, test_multitask_run.py)
    return kind_of_dataset(target_of(CONFIG_DIR, "dataset", name)) not in (MULTITASK, MULTILABEL)


# image datasets read files (not in the repository): slow, and skipped when the files are missing
DATASETS = [
    pytest.param(n, marks=pytest.mark.slow) if _needs_files(n) else n
    for n in options("dataset")
    if _single_label(n)
]


def _load(name, overrides=()):
    """Load a dataset from its configured root; a file-backed one is skipped when its files are missing."""
    try:
        return instantiate(compose([f"dataset={name}", *overrides]).dataset).load()
    except Exception as exc:
        if _needs_files(name) and "files not found" in str(exc):
            pytest.skip(f"{name}: data files missing: {exc.__cause__ or exc}")
        raise


def test_longtail_counts_ldam_cifar10():
    assert sum(longtail_counts(5000, 10, 100, "exp")) == 12406
    assert longtail_counts(5000, 10, 100, "exp") == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert sum(longtail_counts(500, 100, 100, "exp")) == 10847


def test_longtail_counts_step_and_truncation():
    assert longtail_counts(100, 5, 10, "step") == [100, 100, 10, 10, 10]
    assert longtail_counts(10, 3, 3, "exp") == [10, 5, 3]  # 10 * 3^-0.5 = 5.77 truncates to 5
    assert longtail_counts(7, 4, 1, "exp") == [7, 7, 7, 7]


@pytest.mark.parametrize(("ratio", "profile"), [(0.5, "exp"), (10, "linear")])
def test_longtail_counts_invalid(ratio, profile):
    with pytest.raises(ValueError):
        longtail_counts(100, 10, ratio, profile)


@pytest.mark.parametrize("name", DATASETS)
def test_dataset_builds_a_dataspec(name):
    spec = _load(name)
    assert isinstance(spec, DataSpec)
    assert sum(spec.class_counts) == len(spec.train)
    groups = spec.task.groups(spec.train.y).numpy()
    assert list(spec.class_counts) == np.bincount(groups, minlength=spec.num_classes).tolist()
    assert spec.train.y.dtype == spec.task.target_dtype and spec.train.y.ndim == 1
    assert spec.train.x.shape[1:] == spec.input_shape
    for split in (spec.val, spec.test):
        assert split.x.dtype == spec.train.x.dtype and split.x.shape[1:] == spec.input_shape
    assert len(spec.test) > 0 and (len(spec.val) > 0 or spec.meta.get("sizes", {}).get("val") == 0)
    assert spec.meta.get("class_counts", spec.meta.get("bin_counts")) == list(spec.class_counts)
    assert spec.meta.get("index_hash") or name == "synthetic_regression"  # drawn, not selected


@pytest.mark.parametrize(
    "name", [n for n in DATASETS if getattr(n, "values", [n])[0] in options_for("dataset")]
)
def test_longtail_cut_follows_profile(name):
    spec = _load(name, ["dataset.imbalance_ratio=5", "dataset.profile=step"])
    n_max = spec.meta["n_max"]
    target = longtail_counts(n_max, spec.num_classes, 5, "step")
    if "natural_counts" in spec.meta:  # naturally long-tailed tables: the cut caps the natural counts
        target = [min(a, b) for a, b in zip(spec.meta["natural_counts"], target, strict=True)]
    # label-noise variants (digits_sym40, ...): the cut is of the clean labels; noise moves the counts after
    assert spec.meta.get("clean_class_counts", list(spec.class_counts)) == target


def test_digits_read_without_sklearn_equal_load_digits(monkeypatch):
    """`digits_arrays` reads scikit-learn's CSV itself; the same arrays as `load_digits`, also on its fallback."""
    import importlib.util

    from sklearn.datasets import load_digits

    from lossbench.data.digits import digits_arrays

    bunch = load_digits()
    for find in (importlib.util.find_spec, lambda name: None):  # the file, then load_digits itself
        monkeypatch.setattr(importlib.util, "find_spec", find)
        x, y = digits_arrays()
        assert (
            x.dtype == bunch.data.dtype and np.array_equal(x, bunch.data) and np.array_equal(y, bunch.target)
        )


def test_digits_splits_are_balanced_disjoint_and_seeded():
    def load(**kw):
        over = [f"dataset.{k}={v}" for k, v in kw.items()]
        return instantiate(compose(["dataset=digits", *over]).dataset).load()

    spec = load()
    assert np.bincount(spec.test.y.numpy()).tolist() == [40] * 10
    assert np.bincount(spec.val.y.numpy()).tolist() == [20] * 10
    rows = {tuple(r) for r in spec.train.x.numpy()}
    # digits has a few duplicate images, so compare row sets by count rather than demand emptiness
    assert len(rows & {tuple(r) for r in spec.test.x.numpy()}) <= 5
    assert spec.class_counts[0] == spec.meta["n_max"] and spec.class_counts[-1] == int(
        spec.meta["n_max"] / 10
    )
    assert load().meta["index_hash"] == spec.meta["index_hash"]
    assert load(data_seed=1).meta["index_hash"] != spec.meta["index_hash"]


@pytest.mark.parametrize(
    "override", ["dataset.imbalance_ratio=0.5", "dataset.profile=linear", "dataset.val_per_class=-1"]
)
@pytest.mark.parametrize("name", options_for("dataset"))
def test_invalid_dataset_parameters_fail_on_instantiate(name, override):
    if (
        override.startswith("dataset.val_per_class")
        and "val_fraction" in compose([f"dataset={name}"]).dataset
    ):
        override = "dataset.val_fraction=-0.1"  # stratified tables size their splits by fraction
    if override.startswith("dataset.val_per_class") and "val_size" in compose([f"dataset={name}"]).dataset:
        override = "dataset.val_size=0"  # paired-image sets size their splits in images
    with pytest.raises(Exception, match="must|profile"):
        instantiate(compose([f"dataset={name}", override]).dataset)
