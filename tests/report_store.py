"""A synthetic store for the report tests: seeds x methods x datasets with every field the report reads."""

from datetime import UTC, datetime

import numpy as np

from lossbench.store.db import Store
from lossbench.store.record import RunRecord

DATASETS = {"digits": [120, 60, 30, 12, 6], "synthetic": [200, 90, 40, 15, 5, 2]}
METHODS = [("ce", "none"), ("focal", "none"), ("ldam", "drw"), ("balanced_softmax", "none")]
SEEDS = [0, 1, 2]
BINS = 5


def run_values(dataset: str, m: int, seed: int) -> dict:
    """Deterministic, method-dependent numbers (method m is better by 2 points per index + noise)."""
    rng = np.random.default_rng(1000 * m + 10 * seed + len(dataset))
    counts = DATASETS[dataset]
    base = 0.6 + 0.02 * m + (0.05 if dataset == "digits" else 0.0)
    class_acc = [
        float(np.clip(base + 0.1 * (i == 0) - 0.04 * i + rng.normal(0, 0.01), 0, 1))
        for i in range(len(counts))
    ]
    acc = float(np.mean(class_acc)) + float(rng.normal(0, 0.005))
    count = [0, 10, 20, 30, 40]
    conf = [None, 0.35, 0.55, 0.72, 0.9]
    rel_acc = [None, 0.3, 0.5, 0.7 + 0.01 * m, 0.85]
    return {"acc": acc, "class_acc": class_acc, "reliability": {"count": count, "acc": rel_acc, "conf": conf}}


def fill_full(url: str, datasets=tuple(DATASETS)) -> Store:
    store = Store(url)
    for dataset in datasets:
        counts = DATASETS[dataset]
        for m, (loss, weighting) in enumerate(METHODS):
            for seed in SEEDS:
                v = run_values(dataset, m, seed)
                labels = {
                    "experiment": "grid",
                    "dataset": dataset,
                    "model": "mlp",
                    "loss": loss,
                    "weighting": weighting,
                    "sampler": "instance",
                    "trainer": "smoke",
                }
                config = {
                    "seed": seed,
                    "dataset": {"imbalance_ratio": counts[0] / counts[-1], "profile": "exp"},
                    "loss": {"name": loss},
                    "trainer": {"epochs": 3},
                }
                rec = RunRecord(
                    run_id=f"{dataset}-{loss}-{weighting}-{seed}",
                    variant=f"{dataset}-{loss}-{weighting}",
                    labels=labels,
                    seed=seed,
                    config=config,
                    environment={"git_sha": "abc123", "git_dirty": False},
                    started_at=datetime.now(UTC),
                )
                store.claim(rec)
                metrics = {}
                for sel in ("last", "best", "oracle"):
                    bump = {"last": 0.0, "best": 0.005, "oracle": 0.01}[sel]
                    metrics.update(
                        {
                            f"{sel}/test/acc": v["acc"] + bump,
                            f"{sel}/test/balanced_acc": np.mean(v["class_acc"]) + bump,
                            f"{sel}/test/nll": 1.5 - v["acc"],
                            f"{sel}/test/ece": 0.05 + 0.01 * m,
                            f"{sel}/test/many_acc": v["class_acc"][0],
                            f"{sel}/test/medium_acc": v["class_acc"][2],
                            f"{sel}/test/few_acc": v["class_acc"][-1],
                            f"{sel}/test/class_acc": v["class_acc"],
                            f"{sel}/test/reliability": v["reliability"],
                            f"{sel}/val/acc": v["acc"] - 0.01,
                        }
                    )
                history = [
                    {
                        "epoch": e,
                        "lr": 0.1,
                        "train/loss": 2.0 / (e + 1) + 0.1 * m,
                        "val/acc": v["acc"] - 0.1 / (e + 1),
                    }
                    for e in range(3)
                ]
                store.finish(
                    rec.run_id,
                    "completed",
                    metrics=metrics,
                    history_rows=history,
                    data_meta={"class_counts": counts, "data_seed": 0},
                )
    return store
