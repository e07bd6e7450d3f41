import numpy as np
import pytest
from hydra.utils import instantiate

from lossbench.config import compose
from lossbench.data.noise import CIFAR10_MAP, CIFAR100_MAP, LabelNoise, noisify, transition_matrix
from tests.conftest import options_for


def test_symmetric_matrix_flips_to_other_classes_only():
    t = transition_matrix("symmetric", 0.4, 5)
    assert np.allclose(t.sum(1), 1) and np.allclose(np.diag(t), 0.6)
    assert np.allclose(t[0, 1:], 0.1)  # 0.4 spread over the 4 OTHER classes


def test_pairflip_and_asymmetric_maps():
    t = transition_matrix("pairflip", 0.3, 4)
    assert t[3, 0] == pytest.approx(0.3) and t[0, 1] == pytest.approx(0.3) and t[0, 0] == pytest.approx(0.7)
    t = transition_matrix("asymmetric", 0.4, 10, CIFAR10_MAP)
    assert t[9, 1] == pytest.approx(0.4) and t[2, 0] == pytest.approx(0.4) and t[4, 7] == pytest.approx(0.4)
    assert t[3, 5] == pytest.approx(0.4) and t[5, 3] == pytest.approx(0.4)
    assert t[0, 0] == 1 and t[1, 1] == 1 and t[6, 6] == 1 and t[7, 7] == 1 and t[8, 8] == 1
    # CIFAR-100: next class within each block of 5, circularly (reference build_for_cifar100)
    assert CIFAR100_MAP[0] == 1 and CIFAR100_MAP[4] == 0 and CIFAR100_MAP[99] == 95 and CIFAR100_MAP[57] == 58
    with pytest.raises(ValueError, match="class map"):
        transition_matrix("asymmetric", 0.2, 10)


def test_noisify_follows_the_matrix():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), 4000)
    noisy = noisify(y, transition_matrix("symmetric", 0.3, 5), rng)
    assert abs((noisy != y).mean() - 0.3) < 0.02
    flips = noisy[(noisy != y) & (y == 0)]
    assert set(np.unique(flips)) == {1, 2, 3, 4}
    assert np.abs(np.bincount(flips, minlength=5)[1:] / len(flips) - 0.25).max() < 0.04


@pytest.mark.parametrize(
    "kw", [{"kind": "gaussian"}, {"kind": "symmetric", "rate": 1.0}, {"kind": "none", "rate": 0.2}]
)
def test_invalid_noise(kw):
    with pytest.raises(ValueError):
        LabelNoise(**kw)


def _load(name, *over):
    return instantiate(compose([f"dataset={name}", *over]).dataset).load()


def test_noise_hits_train_and_val_never_test_and_is_recorded():
    clean = _load("synthetic")
    noisy = _load("synthetic", "dataset.noise.kind=symmetric", "dataset.noise.rate=0.4")
    assert np.array_equal(clean.test.y, noisy.test.y) and np.array_equal(clean.test.x, noisy.test.x)
    realised = noisy.meta["noise"]["realised"]
    assert realised["train"] == pytest.approx((clean.train.y != noisy.train.y).float().mean().item())
    assert realised["val"] == pytest.approx((clean.val.y != noisy.val.y).float().mean().item())
    assert 0.25 < realised["train"] < 0.55 and realised["val"] > 0.2
    assert list(noisy.class_counts) == np.bincount(noisy.train.y, minlength=5).tolist()
    assert noisy.meta["clean_class_counts"] == list(clean.class_counts)
    again = _load("synthetic", "dataset.noise.kind=symmetric", "dataset.noise.rate=0.4")
    assert np.array_equal(again.train.y, noisy.train.y)  # seeded by data_seed
    other = _load(
        "synthetic", "dataset.noise.kind=symmetric", "dataset.noise.rate=0.4", "dataset.data_seed=1"
    )
    assert other.meta["index_hash"] != noisy.meta["index_hash"]


def test_clean_val_keeps_validation_labels():
    clean = _load("digits")
    noisy = _load(
        "digits", "dataset.noise.kind=pairflip", "dataset.noise.rate=0.3", "dataset.noise.clean_val=true"
    )
    assert np.array_equal(clean.val.y, noisy.val.y) and "val" not in noisy.meta["noise"]["realised"]
    assert noisy.meta["noise"]["realised"]["train"] > 0.1


@pytest.mark.parametrize("name", options_for("dataset"))  # label noise: classification datasets
def test_every_dataset_has_the_noise_key(name):
    cfg = compose([f"dataset={name}"]).dataset
    assert cfg.noise.kind == "none" and cfg.noise.rate == 0.0


def test_asymmetric_needs_a_published_map():
    with pytest.raises(Exception, match="no published asymmetric"):
        instantiate(
            compose(["dataset=digits", "dataset.noise.kind=asymmetric", "dataset.noise.rate=0.2"]).dataset
        )
