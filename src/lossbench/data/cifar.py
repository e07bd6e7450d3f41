"""CIFAR-10/100 with the long-tailed training split of LDAM-DRW (Cao et al. 2019)."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torchvision

from lossbench.data.augment import RandomCropFlip
from lossbench.data.base import Dataset
from lossbench.data.images import missing_message, normalizer
from lossbench.data.longtail import longtail_counts
from lossbench.data.noise import CIFAR10_MAP, CIFAR100_MAP
from lossbench.data.spec import DataSpec

# What a CIFAR "python version" batch is made of: a dict of str/bytes keys, lists of ints and strings,
# and one numpy uint8 array (`_reconstruct` + `ndarray` + `dtype`; `_frombuffer` for protocol-5 pickles,
# `_codecs.encode` for bytes in protocol-2 pickles written by Python 3). Nothing else may be loaded.
SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR batch, refusing every global but the few the format uses (`SAFE_GLOBALS`).

    A plain `pickle.load` runs whatever callable a crafted file names (`os.system`, ...); this
    one raises `pickle.UnpicklingError` instead (Python's `pickle` docs, "Restricting Globals").
    """

    def find_class(self, module: str, name: str) -> Any:
        """The global `module.name` if the format uses it, else `UnpicklingError`."""
        if (module, name) not in SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> md5, once per process


def md5_of(path: Path) -> str:
    """The MD5 hex digest of a file (remembered per path, size and modification time)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        _VERIFIED[key] = digest.hexdigest()
    return _VERIFIED[key]


# The LDAM-DRW reference normalises CIFAR-10 and CIFAR-100 alike with these (cifar_train.py).
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


class CIFAR(Dataset):
    """CIFAR in torchvision's "python version" layout, made long-tailed; the official test set stays balanced.

    Order (`longtail_spec`): the official test set is the test split; `val_per_class` training images
    per class are reserved as a balanced validation split; from the rest a long-tailed training split
    with `longtail_counts(n_max, C, imbalance_ratio, profile)` images is drawn, n_max = the smallest
    per-class count left (5,000 / 500 with `val_per_class=0`, giving LDAM-DRW's 12,406 / 10,847 images
    at ratio 100). Which images are kept: `selection="seeded"` draws them from
    `numpy.random.default_rng(data_seed)`; `selection="reference"` reproduces the reference's own pick
    (`np.random.seed(data_seed)`, then a legacy shuffle of each class, first n kept; needs
    `val_per_class=0`), i.e. the paper's very images at `data_seed=0`. The hash of the kept indices is
    recorded as `meta["index_hash"]`.

    The pickle batches are read by our own reader in torchvision's format (the same files, keys and
    layout as `torchvision.datasets.CIFAR10`). The files under `root` are not trusted: each batch is
    unpickled by `BatchUnpickler`, which admits only the types the format uses (a crafted file fails
    to load instead of running code), and, with `verify_md5=True` (the default), its MD5 must be the
    official file's (torchvision's `train_list`/`test_list`), as torchvision checks. Set
    `dataset.verify_md5=false` to read other files in the same format, such as the small ones the
    tests write (they still go through the restricted unpickler). With `download=True` and files
    missing, torchvision's downloader fetches and checks the real archive first.

    Args:
        root: Folder holding `cifar-10-batches-py/` or `cifar-100-python/`.
        download: Download with torchvision when the files are missing (needs internet).
        imbalance_ratio: n_max / n_min of the training split (>= 1).
        profile: ``"exp"`` or ``"step"``.
        val_per_class: Balanced validation images per class taken from the training images (0 = none,
            as in the papers; then only last-epoch and best-on-test numbers exist).
        data_seed: Seed of the long-tail draw, the validation split and the label noise.
        augment: Random crop (pad 4, black) + horizontal flip on training batches, as the reference.
        selection: ``"seeded"`` or ``"reference"`` (LDAM-DRW's exact images; `val_per_class` must be 0).
        noise: Label noise `{kind, rate, clean_val}` (see `lossbench.data.noise.LabelNoise`).
        verify_md5: Refuse batches whose MD5 is not the official file's (false: accept other files).
    """

    name = "cifar10"
    num_classes = 10
    tv_class: type = torchvision.datasets.CIFAR10
    label_key = "labels"
    archive = "cifar-10-python.tar.gz"
    train_per_class = 5000  # training images per class in the official files
    execution_params = ("root", "download")

    def __init__(
        self,
        root: str = "data",
        download: bool = False,
        imbalance_ratio: float = 100.0,
        profile: str = "exp",
        val_per_class: int = 0,
        data_seed: int = 0,
        augment: bool = True,
        noise: Mapping[str, Any] | None = None,
        selection: str = "seeded",
        verify_md5: bool = True,
    ) -> None:
        self.set_recipe(imbalance_ratio, profile, val_per_class, data_seed, noise)
        if selection not in ("seeded", "reference"):
            raise ValueError(f"selection must be seeded or reference, got {selection!r}")
        if selection == "reference" and val_per_class:
            raise ValueError(f"selection=reference must have val_per_class=0, got {val_per_class}")
        self.selection = selection
        # the split sizes are known without reading the files: check them before anything trains
        if val_per_class >= self.train_per_class:
            raise ValueError(
                f"dataset.val_per_class={val_per_class} leaves no training image ({self.name} has "
                f"{self.train_per_class} per class); use dataset.val_per_class < {self.train_per_class}"
            )
        longtail_counts(self.train_per_class - val_per_class, self.num_classes, imbalance_ratio, profile)
        self.root, self.download, self.augment = Path(root), download, augment
        self.verify_md5 = verify_md5
        if not download:  # a few stat calls: missing data fails before anything trains
            self._ensure_files()

    def shapes(self) -> tuple[tuple[int, ...], int]:
        """CIFAR images are (3, 32, 32)."""
        return (3, 32, 32), self.num_classes

    @property
    def folder(self) -> Path:
        """Where the batches live: ROOT/cifar-10-batches-py or ROOT/cifar-100-python."""
        return self.root / self.tv_class.base_folder

    def _files(self, train: bool) -> list[Path]:
        return [path for path, _md5 in self._entries(train)]

    def _entries(self, train: bool) -> list[tuple[Path, str]]:
        entries = self.tv_class.train_list if train else self.tv_class.test_list
        return [(self.folder / name, md5) for name, md5 in entries]

    def missing_files(self) -> list[str]:
        """The expected files that are not there (empty when the data is present)."""
        meta = self.folder / self.tv_class.meta["filename"]
        return [str(p) for p in [*self._files(True), *self._files(False), meta] if not p.is_file()]

    def _read(self, train: bool) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for path, md5 in self._entries(train):
            if self.verify_md5 and md5_of(path) != md5:
                raise ValueError(
                    f"{path} is not the official {self.name} file (MD5 {md5_of(path)}, expected {md5}); "
                    f"replace it with the file from {self.archive}, or set dataset.verify_md5=false to "
                    "read other files in this format"
                )
            with open(path, "rb") as f:
                try:
                    entry = BatchUnpickler(f, encoding="latin1").load()
                except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
                    raise ValueError(f"{path} is not a CIFAR batch ({exc}); it was not loaded") from exc
            if not isinstance(entry, dict) or "data" not in entry or self.label_key not in entry:
                raise ValueError(f"{path} is not a CIFAR batch (needs 'data' and {self.label_key!r})")
            xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(entry[self.label_key], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    def _ensure_files(self) -> None:
        if self.missing_files() and self.download:
            try:
                self.tv_class(str(self.root), train=True, download=True)
                self.tv_class(str(self.root), train=False, download=True)
            except Exception as exc:  # offline, or a bad archive: one line, with the remedy
                raise ValueError(
                    f"{self.name}: download to {self.root} failed ({type(exc).__name__}: {exc}); "
                    f"copy {self.archive} extracted into {self.root}"
                ) from exc
        missing = self.missing_files()
        if missing:
            raise ValueError(
                missing_message(
                    self.name,
                    missing,
                    f"set dataset.download=true (needs internet) or extract {self.archive} "
                    f"(the python version) into {self.root}",
                )
            )

    def build(self) -> DataSpec:
        """Read the batches and cut the splits."""
        self._ensure_files()
        x, y = self._read(train=True)
        test = self._read(train=False)
        spec = self.cut_longtail(
            self.name, x, y, self.num_classes, test=test, transform=normalizer(MEAN, STD),
            reference_selection=self.selection == "reference",
        )  # fmt: skip
        if not self.augment:
            return spec
        black = [-m / s for m, s in zip(MEAN, STD, strict=True)]
        return dataclasses.replace(spec, augment=RandomCropFlip(padding=4, fill=black, flip=True))


class CIFAR10(CIFAR):
    """CIFAR-10-LT (10 classes, 5,000 training / 1,000 test images each before the cut)."""

    asymmetric_map = CIFAR10_MAP


class CIFAR100(CIFAR):
    """CIFAR-100-LT (100 fine classes, 500 training / 100 test images each before the cut)."""

    name = "cifar100"
    num_classes = 100
    tv_class = torchvision.datasets.CIFAR100
    label_key = "fine_labels"
    archive = "cifar-100-python.tar.gz"
    train_per_class = 500
    asymmetric_map = CIFAR100_MAP
