import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from lossbench.config import compose
from lossbench.data import longtail_counts
from lossbench.data.tables import UCI, TableFormat, UCITable, read_table, relabel_by_frequency

# class sizes of the raw files (UCI documentation), most frequent first
KNOWN = {
    "yeast": [463, 429, 244, 163, 51, 44, 35, 30, 20, 5],
    "ecoli": [143, 77, 52, 35, 20, 5, 2, 2],
    "glass": [76, 70, 29, 17, 13, 9],
    "page_blocks": [4913, 329, 115, 87, 28],
    "satimage": [1533, 1508, 1358, 707, 703, 626],
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_raw_tables_parse_to_the_known_class_sizes(name):
    x, raw = UCITable(name).read()
    y, names = relabel_by_frequency(raw)
    assert np.bincount(y).tolist() == KNOWN[name] and len(x) == sum(KNOWN[name])
    assert np.isfinite(x).all()


def test_abalone_one_hot_sex_and_28_ring_classes():
    x, raw = UCITable("abalone").read()
    assert x.shape == (4177, 10) and (x[:, :3].sum(1) == 1).all() and len(set(raw)) == 28


def test_yeast_split_is_stratified_standardised_and_natural():
    spec = instantiate(compose(["dataset=yeast"]).dataset).load()
    assert spec.meta["class_names"][0] == "CYT" and spec.meta["class_names"][-1] == "ERL"
    natural = spec.meta["natural_counts"]
    assert list(spec.class_counts) == natural and natural[0] == 463 - 2 * 93 and natural[-1] == 3
    for split in (spec.val, spec.test):
        counts = np.bincount(split.y.numpy(), minlength=10)
        assert counts[0] == 93 and counts[-1] == 1
    assert torch.allclose(spec.train.x.mean(0), torch.zeros(8), atol=1e-5)
    assert not torch.allclose(spec.test.x.mean(0), torch.zeros(8), atol=1e-3)  # fitted on train only
    assert spec.meta["sizes"] == {"train": len(spec.train), "val": len(spec.val), "test": len(spec.test)}


def test_imbalance_ratio_caps_the_natural_counts():
    spec = UCITable("yeast", imbalance_ratio=100).load()
    natural = spec.meta["natural_counts"]
    target = longtail_counts(natural[0], 10, 100, "exp")
    assert list(spec.class_counts) == [min(a, b) for a, b in zip(natural, target, strict=True)]
    assert spec.class_counts[1] < natural[1]


def test_small_classes_are_dropped_and_recorded():
    spec = UCITable("ecoli").load()
    assert spec.num_classes == 6 and spec.meta["dropped_classes"] == ["imL", "imS"]


def test_parser_formats(tmp_path):
    keel = tmp_path / "t.dat"
    keel.write_text("@relation t\n@attribute a real\n@data\n1, 2.5, A\n3, 4, B\n\n5, 6, B\n")
    x, y = read_table([keel], TableFormat("t", ("t.dat",), ","))
    assert x.tolist() == [[1, 2.5], [3, 4], [5, 6]] and y.tolist() == ["A", "B", "B"]
    ws = tmp_path / "w.txt"
    ws.write_text("n1  0.1  0.2  X\nn2  0.3 0.4   Y\n")
    x, y = read_table([ws], TableFormat("w", ("w.txt",), None, drop_first=True))
    assert x.shape == (2, 2) and y.tolist() == ["X", "Y"]
    assert relabel_by_frequency(np.array(["b", "a", "a", "c", "b", "b"]))[1] == ["b", "a", "c"]


@pytest.mark.parametrize("kw", [{"name": "iris"}, {"name": "yeast", "val_fraction": 1.2},
                                {"name": "yeast", "imbalance_ratio": 0.5}, {"name": "yeast", "min_class_size": 1}])  # fmt: skip
def test_invalid_table_parameters(kw):
    with pytest.raises(ValueError):
        UCITable(**kw)


def test_every_uci_table_has_a_config():
    from lossbench.config import options

    assert set(UCI) <= set(options("dataset"))


@pytest.mark.parametrize("name", ["breast_cancer", "wine"])
def test_sklearn_tables_are_long_tailed_and_standardised(name):
    spec = instantiate(compose([f"dataset={name}"]).dataset).load()
    assert list(spec.class_counts) == longtail_counts(spec.meta["n_max"], spec.num_classes, 10, "exp")
    assert torch.allclose(spec.train.x.mean(0), torch.zeros(spec.input_shape), atol=1e-4)
