"""Run identity: execution settings, spelled-out defaults and number spellings never change a run id."""

from __future__ import annotations

import hashlib
import json

import pytest
import sqlalchemy as sa
from omegaconf import OmegaConf

from lossbench.config import compose
from lossbench.identity import check_seed, execution_fields, run_id_of, variant_of
from lossbench.store import db
from lossbench.store.config import StoreConfig
from lossbench.store.db import Store, history, runs
from lossbench.train.config import TrainerConfig

BASE = ["dataset=digits", "trainer=default"]


def rid(*overrides: str) -> str:
    return run_id_of(OmegaConf.to_container(compose([*BASE, *overrides]), resolve=True))


@pytest.mark.parametrize(
    "same",
    [
        ["trainer.device=cpu"],
        ["trainer.progress=false"],
        ["trainer.checkpoint_every=1"],
        ["trainer.eval_batch_size=256"],
        ["seed=0.0"],
        ["store.url=sqlite:///elsewhere.db", "store.timeout_s=1"],
        ["force=true"],
        ["paths.results_dir=/tmp/somewhere"],
        ["trainer.lr=0.10"],
        ["dataset.imbalance_ratio=10.0"],
        # records made before the Task seam spelled out the classification defaults (null now)
        ["trainer.select_metric=val/acc", "trainer.many_threshold=100", "trainer.few_threshold=20"],
    ],
)
def test_execution_settings_and_number_spellings_keep_the_id(same):
    assert rid(*same) == rid()


def test_spelled_out_defaults_equal_omitted_ones():
    # focal's constructor default is gamma=2.0: `loss.gamma=2` and dropping the key are the same run
    assert rid("loss=focal", "loss.gamma=2") == rid("loss=focal")
    assert rid("loss=focal", "~loss.gamma") == rid("loss=focal")
    assert rid("loss=focal", "loss.gamma=1") != rid("loss=focal")


@pytest.mark.parametrize(
    "different",
    [["seed=1"], ["trainer.lr=0.05"], ["loss=focal"], ["dataset.data_seed=1"], ["trainer.few_threshold=10"]],
)
def test_what_changes_a_result_changes_the_id(different):
    assert rid(*different) != rid()


def test_variant_ignores_only_the_seed():
    a, b = (OmegaConf.to_container(compose([*BASE, f"seed={s}"]), resolve=True) for s in (0, 1))
    assert variant_of(a) == variant_of(b) and run_id_of(a) != run_id_of(b)


def test_execution_fields_are_declared_in_the_schemas():
    assert {"device", "progress", "checkpoint_every", "eval_batch_size"} <= execution_fields(TrainerConfig)
    assert "epochs" not in execution_fields(TrainerConfig)
    assert execution_fields(StoreConfig) == {"url", "timeout_s", "stale_after_s", "retries"}


@pytest.mark.parametrize("bad", [1.5, "abc", True, float("nan"), None])
def test_seeds_are_integers(bad):
    with pytest.raises(ValueError, match="seed must be an integer"):
        check_seed(bad)
    assert check_seed(3.0) == 3 and check_seed(7) == 7


def _legacy_id(config: dict) -> str:
    """How schema-2 stores computed run ids (the raw resolved config, unnormalised)."""
    drop = ("store", "force", "logger", "paths", "local")
    blob = json.dumps({k: v for k, v in config.items() if k not in drop}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def test_a_schema_2_store_keeps_finding_its_records(tmp_path):
    """Opening a v2 store for writing gives each run its new id; duplicates by the new identity stay."""
    url = f"sqlite:///{tmp_path}/v2.db"
    configs = {
        "auto": OmegaConf.to_container(compose([*BASE]), resolve=True),
        "cpu": OmegaConf.to_container(compose([*BASE, "trainer.device=cpu"]), resolve=True),
        "seed1": OmegaConf.to_container(compose([*BASE, "seed=1"]), resolve=True),
    }
    engine = sa.create_engine(url)
    db.metadata_obj.create_all(engine)
    with engine.begin() as conn:
        conn.execute(db.store_meta.insert().values(key="schema_version", value="2"))
        for i, (name, cfg) in enumerate(configs.items()):
            conn.execute(runs.insert().values(run_id=_legacy_id(cfg), variant=name, status="completed",
                                              seed=cfg["seed"], config=cfg, metrics={"last/test/acc": i},
                                              finished_at=None))  # fmt: skip
            conn.execute(
                history.insert().values(run_id=_legacy_id(cfg), epoch=0, values={"epoch": 0, "i": i})
            )
    engine.dispose()
    assert len({_legacy_id(c) for c in configs.values()}) == 3
    assert rid() == rid("trainer.device=cpu") != _legacy_id(configs["auto"])

    store = Store(url)
    with store.engine.connect() as conn:
        version = conn.execute(sa.select(db.store_meta.c.value)).scalar()
        ids = {r[0]: r[1] for r in conn.execute(sa.select(runs.c.run_id, runs.c.variant))}
    assert version == str(db.SCHEMA_VERSION)
    assert rid() in ids and rid("seed=1") in ids  # found under today's ids ...
    assert len(ids) == 3  # ... and the duplicate (device=cpu) was kept under its old id, not deleted
    assert ids[rid()] == ids[rid("seed=1")] == variant_of(configs["auto"])
    assert store.status_of(rid()) == "completed"
    assert store.history_of(rid("seed=1")) == [{"epoch": 0, "i": 2}]
    reread = Store(url)  # a current store is not migrated again
    assert reread.statuses(ids) == {i: "completed" for i in ids}


def test_reading_an_old_store_never_migrates_it(tmp_path):
    url = f"sqlite:///{tmp_path}/v2.db"
    engine = sa.create_engine(url)
    db.metadata_obj.create_all(engine)
    with engine.begin() as conn:
        conn.execute(db.store_meta.insert().values(key="schema_version", value="2"))
    engine.dispose()
    before = (tmp_path / "v2.db").read_bytes()
    assert Store.reader(url).counts()["completed"] == 0
    assert (tmp_path / "v2.db").read_bytes() == before
