"""CIFAR and (Fashion-)MNIST through the real code path, on small files written in the on-disk formats."""

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from lossbench.config import compose
from lossbench.data import longtail_counts
from lossbench.data.cifar import CIFAR10, CIFAR100
from lossbench.data.mnist import FashionMNIST

SYSTEM = Path("/usr/share/datasets/fashion-mnist")


def write_cifar(root, per_class_train, per_class_test, num_classes=10, seed=0):
    """CIFAR "python version" pickles as torchvision reads them; every image is unique (id in the pixels)."""
    rng = np.random.default_rng(seed)
    cifar100 = num_classes == 100
    folder = root / ("cifar-100-python" if cifar100 else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    key = "fine_labels" if cifar100 else "labels"

    def batch(labels, start):
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        data[:, :3] = np.stack([(np.arange(len(labels)) + start) // 256**k % 256 for k in range(3)], 1)
        return {"data": data, key: list(map(int, labels)), "batch_label": "synthetic"}

    train_y = rng.permutation(np.repeat(np.arange(num_classes), per_class_train))
    test_y = np.repeat(np.arange(num_classes), per_class_test)
    if cifar100:
        parts = {"train": (train_y, 0), "test": (test_y, len(train_y))}
        meta = {"fine_label_names": [f"c{i}" for i in range(100)], "coarse_label_names": []}
        meta_name = "meta"
    else:
        chunks = np.array_split(train_y, 5)
        starts = np.cumsum([0] + [len(c) for c in chunks])
        parts = {f"data_batch_{i + 1}": (c, starts[i]) for i, c in enumerate(chunks)}
        parts["test_batch"] = (test_y, len(train_y))
        meta = {"label_names": [f"c{i}" for i in range(10)]}
        meta_name = "batches.meta"
    for name, (labels, start) in parts.items():
        with open(folder / name, "wb") as f:
            pickle.dump(batch(labels, start), f)
    with open(folder / meta_name, "wb") as f:
        pickle.dump(meta, f)


def image_ids(x):
    """Recover the id written into the first 3 raw pixels (undoing the normalisation)."""
    mean, std = 0.4914, 0.2023
    raw = torch.round((x[:, 0, 0, :3] * std + mean) * 255).long()
    return (raw[:, 0] + 256 * raw[:, 1] + 65536 * raw[:, 2]).tolist()


def test_cifar10_counts_hash_and_balanced_disjoint_splits(tmp_path):
    write_cifar(tmp_path, per_class_train=60, per_class_test=7)
    spec = CIFAR10(root=str(tmp_path), verify_md5=False, imbalance_ratio=10, val_per_class=10).load()
    expected = longtail_counts(50, 10, 10, "exp")  # 60 per class present, 10 reserved for validation
    assert list(spec.class_counts) == expected == spec.meta["class_counts"]
    assert np.bincount(spec.train.y.numpy(), minlength=10).tolist() == expected
    assert np.bincount(spec.val.y.numpy()).tolist() == [10] * 10
    assert np.bincount(spec.test.y.numpy()).tolist() == [7] * 10
    assert len(spec.meta["index_hash"]) == 16 and spec.meta["n_max"] == 50
    train, val, test = image_ids(spec.train.x), image_ids(spec.val.x), image_ids(spec.test.x)
    assert (
        len(set(train)) == len(train)
        and not set(train) & set(val)
        and not (set(train) | set(val)) & set(test)
    )
    assert spec.input_shape == (3, 32, 32) and spec.train.x.dtype == torch.float32
    assert spec.augment is not None and spec.augment(spec.train.x[:4]).shape == (4, 3, 32, 32)
    again = CIFAR10(root=str(tmp_path), verify_md5=False, imbalance_ratio=10, val_per_class=10).load()
    assert again.meta["index_hash"] == spec.meta["index_hash"]
    assert (
        CIFAR10(root=str(tmp_path), verify_md5=False, imbalance_ratio=10, val_per_class=10, data_seed=1)
        .load()
        .meta["index_hash"]
        != spec.meta["index_hash"]
    )


def test_cifar10_paper_preset_uses_every_head_image_and_has_no_val(tmp_path):
    write_cifar(tmp_path, per_class_train=100, per_class_test=5)  # ratio 100 keeps 1 image of the last class
    cfg = compose(["dataset=cifar10", f"dataset.root={tmp_path}", "dataset.verify_md5=false"])
    spec = instantiate(cfg.dataset).load()
    assert list(spec.class_counts) == longtail_counts(100, 10, 100, "exp") and len(spec.val) == 0
    assert spec.class_counts[0] == 100  # n_max = all images per class present, as with the real 5,000


def test_cifar100_reads_fine_labels(tmp_path):
    write_cifar(tmp_path, per_class_train=12, per_class_test=2, num_classes=100)
    spec = CIFAR100(root=str(tmp_path), verify_md5=False, imbalance_ratio=10, val_per_class=2).load()
    assert list(spec.class_counts) == longtail_counts(10, 100, 10, "exp")
    assert np.bincount(spec.test.y.numpy()).tolist() == [2] * 100


def test_cifar_asymmetric_noise_uses_the_class_map(tmp_path):
    write_cifar(tmp_path, per_class_train=40, per_class_test=3)
    clean = CIFAR10(root=str(tmp_path), verify_md5=False, imbalance_ratio=1, val_per_class=5).load()
    noisy = CIFAR10(root=str(tmp_path), verify_md5=False, imbalance_ratio=1, val_per_class=5,
                    noise={"kind": "asymmetric", "rate": 0.4}).load()  # fmt: skip
    changed = clean.train.y != noisy.train.y
    pairs = set(zip(clean.train.y[changed].tolist(), noisy.train.y[changed].tolist(), strict=True))
    assert pairs and pairs <= {(9, 1), (2, 0), (4, 7), (3, 5), (5, 3)}
    assert torch.equal(clean.test.y, noisy.test.y)


def test_missing_cifar_files_give_one_line_with_path_and_remedy(tmp_path):
    with pytest.raises(ValueError) as info:
        CIFAR10(root=str(tmp_path / "nowhere"))  # the constructor checks, so `lossbench run` fails at once
    msg = str(info.value)
    assert "\n" not in msg and "cifar-10-batches-py" in msg and "download=true" in msg


def write_idx(folder, images, labels, prefix):
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">IIII", 0x803, n, h, w) + images.tobytes()
    )
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.tobytes())


def _idx_data(per_class, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat(np.arange(10, dtype=np.uint8), per_class))
    return rng.integers(0, 256, (len(y), 28, 28), dtype=np.uint8), y


def test_fashion_mnist_reads_idx_files_through_torchvision(tmp_path):
    write_idx(tmp_path / "FashionMNIST" / "raw", *_idx_data(30), "train")
    write_idx(tmp_path / "FashionMNIST" / "raw", *_idx_data(4, 1), "t10k")
    cfg = compose(["dataset=fashion_mnist", f"dataset.root={tmp_path}", "dataset.val_per_class=5",
                   "dataset.imbalance_ratio=5", "dataset.system_dir="])  # fmt: skip
    spec = instantiate(cfg.dataset).load()
    assert list(spec.class_counts) == longtail_counts(25, 10, 5, "exp")
    assert spec.input_shape == (1, 28, 28) and np.bincount(spec.val.y.numpy()).tolist() == [5] * 10
    assert np.bincount(spec.test.y.numpy()).tolist() == [4] * 10


def test_fashion_mnist_unpacks_the_debian_gz_files(tmp_path):
    system = tmp_path / "system"
    write_idx(system, *_idx_data(12), "train")
    write_idx(system, *_idx_data(2, 1), "t10k")
    for f in list(system.iterdir()):
        (system / f"{f.name}.gz").write_bytes(gzip.compress(f.read_bytes()))
        f.unlink()
    ds = FashionMNIST(root=str(tmp_path / "data"), system_dir=str(system), val_per_class=2, imbalance_ratio=2)
    spec = ds.load()
    assert (tmp_path / "data" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert list(spec.class_counts) == longtail_counts(10, 10, 2, "exp")


def test_missing_mnist_files_message(tmp_path):
    with pytest.raises(ValueError) as info:
        FashionMNIST(root=str(tmp_path), system_dir="")
    msg = str(info.value)
    assert (
        "\n" not in msg
        and "FashionMNIST/raw/train-images-idx3-ubyte" in msg
        and "dataset-fashion-mnist" in msg
    )


@pytest.mark.slow
def test_real_fashion_mnist_counts(tmp_path):
    if not (SYSTEM / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("dataset-fashion-mnist not installed (make data-fashion-mnist)")
    spec = FashionMNIST(root=str(tmp_path), system_dir=str(SYSTEM), val_per_class=0).load()
    assert list(spec.class_counts) == longtail_counts(6000, 10, 100, "exp") and len(spec.test) == 10000


def test_cifar_reference_selection_reproduces_the_ldam_drw_pick(tmp_path):
    write_cifar(tmp_path, per_class_train=30, per_class_test=2)
    spec = CIFAR10(root=str(tmp_path), verify_md5=False, imbalance_ratio=10, selection="reference").load()
    ds = CIFAR10(root=str(tmp_path), verify_md5=False)
    _, y = ds._read(train=True)
    # the reference, step by step: seed the legacy global generator, shuffle each class, keep the first n
    np.random.seed(0)
    kept = []
    for c, n in enumerate(longtail_counts(30, 10, 10, "exp")):
        idx = np.where(y == c)[0]
        np.random.shuffle(idx)
        kept.extend(idx[:n].tolist())
    assert sorted(image_ids(spec.train.x)) == sorted(kept)
    assert spec.meta["selection"] == "reference"
    with pytest.raises(ValueError, match="val_per_class=0"):
        CIFAR10(root=str(tmp_path), verify_md5=False, val_per_class=5, selection="reference")


def test_cli_fails_in_one_line_before_training_when_cifar_is_missing(tmp_path):
    from tests.conftest import lossbench

    result = lossbench("run", "dataset=cifar10", "model=resnet32", "store=memory", cwd=tmp_path)
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "cifar-10-batches-py" in result.stderr and "download=true" in result.stderr


class _Exploit:
    """A pickle that calls `builtins.exec` when loaded by plain `pickle.load`."""

    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_a_crafted_cifar_batch_is_refused_not_executed(tmp_path, monkeypatch):
    write_cifar(tmp_path, per_class_train=20, per_class_test=5)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    with open(batch, "wb") as f:
        pickle.dump({"data": _Exploit(), "labels": [0]}, f)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"not a CIFAR batch \(builtins.exec is not allowed"):
        CIFAR10(root=str(tmp_path), verify_md5=False, imbalance_ratio=2, val_per_class=2).load()
    assert not (tmp_path / "PWNED").exists()


def test_cifar_batches_must_be_the_official_files_unless_told_otherwise(tmp_path):
    write_cifar(tmp_path, per_class_train=20, per_class_test=5)
    with pytest.raises(ValueError, match="is not the official cifar10 file .*dataset.verify_md5=false"):
        CIFAR10(root=str(tmp_path), imbalance_ratio=2, val_per_class=2).load()
    assert (
        CIFAR10(root=str(tmp_path), verify_md5=False, imbalance_ratio=2, val_per_class=2).load().num_classes
        == 10
    )
