"""Real data (slow): the acceptance runs of the real-datasets issue, skipped when the files are absent."""

import json
from pathlib import Path

import pytest

from lossbench.store.db import Store
from tests.conftest import lossbench

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
ACCEPTANCE = [
    "run",
    "dataset=fashion_mnist",
    "dataset.imbalance_ratio=100",
    "model=lenet",
    "loss=ldam",
    "weighting=drw",
]


@pytest.mark.slow
@pytest.mark.skipif(
    not FMNIST.is_file(), reason="dataset-fashion-mnist not installed (make data-fashion-mnist)"
)
def test_fashion_mnist_lt_ldam_drw_lenet_run_records_shot_accuracies(tmp_path):
    url = f"sqlite:///{tmp_path}/f.db"
    # the acceptance command, shortened to 2 epochs (the full default run is timed in the README)
    args = [*ACCEPTANCE, "trainer.epochs=2", "trainer.few_threshold=60", f"store.url={url}",
            f"paths.data_dir={tmp_path}/data"]  # fmt: skip
    result = lossbench(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with Store(url).engine.connect() as conn:
        row = conn.exec_driver_sql("select metrics, data_meta from runs").one()
    metrics, meta = (json.loads(v) if isinstance(v, str) else v for v in row)
    assert meta["class_counts"] == [5500, 3297, 1976, 1184, 710, 425, 255, 153, 91, 55]
    for group in ("many", "medium", "few"):  # few: the 55-image class (< 60)
        assert 0 <= metrics[f"last/test/{group}_acc"] <= 1
        assert 0 <= metrics[f"best/test/{group}_acc"] <= 1
