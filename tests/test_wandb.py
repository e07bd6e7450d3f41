"""logger=wandb offline: no key, no network; the offline run holds the per-epoch metrics the store holds."""

import json
import os
import struct

import pytest

from lossbench.store import wandb_sink
from lossbench.store.db import Store
from tests.conftest import lossbench

wandb = pytest.importorskip("wandb", reason="wandb is not installed (pip install 'lossbench[wandb]')")
from wandb.proto import wandb_internal_pb2 as pb  # noqa: E402


def read_records(path):
    """The protobuf records of a `.wandb` file (a LevelDB-style log: 32 KiB blocks, 7-byte headers)."""
    data, block, pos, records, partial = path.read_bytes(), 32768, 7, [], b""  # 7: the W&B file header
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 1:  # full
            records.append(chunk)
        elif kind in (2, 3):  # first, middle
            partial = (b"" if kind == 2 else partial) + chunk
        elif kind == 4:  # last
            records.append(partial + chunk)
    out = []
    for raw in records:
        record = pb.Record()
        record.ParseFromString(raw)
        out.append(record)
    return out


def test_offline_run_holds_the_logged_metrics(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), NETRC=str(tmp_path / "no-netrc"))  # no API key anywhere
    args = [
        "run",
        "logger=wandb",
        "dataset=synthetic",
        "dataset.n_max=30",
        "trainer=smoke",
        "trainer.eval_every=1",
    ]
    res = lossbench(*args, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    (run_file,) = (tmp_path / "results" / "wandb").glob("offline-run-*/run-*.wandb")
    records = read_records(run_file)
    history = [
        {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    store = Store(f"sqlite:///{tmp_path}/results/lossbench.db")
    rows = store.history_of(run.run_id)
    assert len(rows) == 2
    assert [h["epoch"] for h in history] == [0, 1]  # one entry per epoch
    assert history[-1]["val/acc"] == pytest.approx(rows[-1]["val/acc"])  # the same numbers as the store
    config = {c.key: json.loads(c.value_json) for c in run.config.update}
    assert config["loss"]["_target_"].endswith("CrossEntropyLoss") and config["seed"] == 0
    assert run.job_type == "synthetic" and "loss=ce" in run.tags and "weighting=none" in run.tags
    assert len(run.run_group) == 20 and run.run_group != run.run_id  # the variant: seeds share it


def test_mode_is_offline_without_a_key(monkeypatch, tmp_path):
    for key in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "absent"))
    assert wandb_sink.resolve_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_sink.resolve_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_sink.resolve_mode("auto") == "disabled" and wandb_sink.resolve_mode("offline") == "offline"


def test_a_wandb_failure_never_stops_the_run(monkeypatch):
    def refuse(**kwargs):
        raise TimeoutError("no W&B service")

    monkeypatch.setattr(wandb, "init", refuse)
    sink = wandb_sink.WandbSink(mode="offline")
    sink.start("r1", {"seed": 0}, {"dataset": "digits", "loss": "ce"})
    sink.log({"epoch": 0, "val/acc": 0.5})
    sink.finish("completed", {"last/test/acc": 0.5})  # all no-ops after the failed start
