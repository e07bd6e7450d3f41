"""Bad input, one table: each case is a command, its exit code and a fragment of its one-line message.

Every case must fail (or succeed, code 0) with no traceback, one `lossbench: ...` line on stderr and
no file of the user's changed or created. The cases run in-process (`lossbench.cli.main`), so the
table costs seconds; only the signal test needs a subprocess.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lossbench.cli import main
from lossbench.store.db import Store
from lossbench.store.record import RunRecord

# (command, expected exit code, fragment of the one-line message). Paths in braces are the files of
# the `files` fixture: {store} a lossbench store, {foreign} someone else's SQLite database with its
# own `runs` table, {corrupt} a store with a damaged page, {empty} a 0-byte file, {text} a text file,
# {yaml} malformed YAML, {missing} a path that does not exist.
RUN = ["run", "store.url=sqlite:///{store}"]
CASES = [
    # run identity inputs
    ([*RUN, "seed=1.5"], 2, "seed must be an integer, got 1.5"),
    ([*RUN, "seed=abc"], 2, "seed must be an integer, got 'abc'"),
    ([*RUN, "seed=-1"], 2, "seed must be in [0, 2**63)"),
    ([*RUN, "+sede=1"], 2, "unknown top-level key(s) sede"),
    ([*RUN, "-m", "seed=0,1.5"], 2, "seed must be an integer"),
    # preflight: the model on the dataset's shapes, the device, split sizes, parameters, schedules
    ([*RUN, "model=resnet32"], 2, "needs image inputs"),
    ([*RUN, "model.head=nope"], 2, "head must be one of linear, normed"),
    ([*RUN, "model.dropout=1.5"], 2, "dropout must be in [0, 1)"),
    ([*RUN, "trainer.device=gpu"], 2, "trainer.device='gpu' is not a device"),
    ([*RUN, "trainer.device=mps"], 2, "trainer.device='mps' is not a device"),
    ([*RUN, "trainer.device=cuda:99"], 2, "trainer.device=cuda:99"),
    ([*RUN, "dataset.val_per_class=500"], 2, "dataset.val_per_class=500 needs 500 examples of class 0"),
    ([*RUN, "dataset.test_per_class=0"], 2, "test_per_class must be >= 1"),
    ([*RUN, "dataset.imbalance_ratio=1e9"], 2, "without a training example"),
    ([*RUN, "dataset=cifar10", "dataset.val_per_class=6000"], 2, "leaves no training image"),
    ([*RUN, "weighting=drw", "weighting.start_epoch=99"], 2, "weighting.start_epoch=99 is never reached"),
    ([*RUN, "sampler=drs", "sampler.start_epoch=30"], 2, "sampler.start_epoch=30 is never reached"),
    ([*RUN, "loss=focal", "loss.gamma=abc"], 2, "loss.gamma must be a number, got 'abc'"),
    ([*RUN, "loss=focal", "loss.gamma=-1"], 2, "gamma"),
    ([*RUN, "model.hidden=abc"], 2, "model.hidden must be a list, got 'abc'"),
    ([*RUN, "model.hidden=[a,b]"], 2, "model.hidden must be a list of integers"),
    ([*RUN, "model.dropout=true"], 2, "model.dropout must be a number, got True"),
    ([*RUN, "loss=ldam", "loss.s=0"], 2, "s must be > 0"),
    ([*RUN, "+loss.gama=2"], 2, "gama"),
    ([*RUN, "loss=nope"], 2, "valid options"),
    ([*RUN, "trainer.epochs=0"], 2, "epochs must be >= 1"),
    ([*RUN, "trainer.epochs=abc"], 2, "epochs"),
    ([*RUN, "trainer.eval_batch_size=0"], 2, "eval_batch_size must be >= 1"),
    ([*RUN, "trainer.select_metric=test/acc"], 2, "select_metric"),
    # the store run writes to: refused before anything is written
    (["run", "store.url=sqlite:///{foreign}"], 2, "not a lossbench store (its tables: runs)"),
    (["run", "store.url=sqlite:///{corrupt}"], 2, "is corrupted (PRAGMA quick_check"),
    (["run", "store.url=sqlite:///{text}"], 2, "is not a SQLite database"),
    (["run", "store.url=sqlite:///{dir}"], 2, "is a folder"),
    # reading: never creates, never migrates, names the problem
    (["status", "--store", "sqlite:///{missing}"], 1, "no store at"),
    (["status", "--store", "sqlite:///{empty}"], 1, "is empty, not a lossbench store"),
    (["status", "--store", "sqlite:///{foreign}"], 1, "not a lossbench store"),
    (["status", "--store", "sqlite:///{corrupt}"], 1, "is corrupted"),
    (["status", "--store", "sqlite:///{text}"], 1, "not a readable SQLite database"),
    (["report", "--store", "sqlite:///{missing}"], 2, "no store at"),
    (["report", "--select", "nope"], 2, "argument --select: invalid choice: 'nope'"),
    (["study", "study=quick", "--workers", "0"], 2, "--workers: expected an integer >= 1 or 'auto', got '0'"),
    (["report", "--store", "sqlite:///{empty}"], 2, "is empty, not a lossbench store"),
    (["report", "--store", "sqlite:///{foreign}"], 2, "not a lossbench store"),
    (["report", "--store", "sqlite:///{corrupt}"], 2, "corrupted"),
    (["report", "--store", "sqlite:///{dir}"], 2, "is a folder"),
    (["report", "--store", "not a url"], 2, "cannot use store URL 'not a url'"),
    (["status", "--store", "nosuchdb://x"], 1, "cannot use store URL"),
    (["run", "store.url=not-a-url"], 2, "cannot use store URL"),
    # report: outputs never overwrite a store or any SQLite file; wrong kinds of path fail in one line
    (["report", "--store", "sqlite:///{store}", "--out", "{store}"], 2, "is the store itself"),
    (["report", "--store", "sqlite:///{store}", "--out", "{foreign}"], 2, "is a SQLite database"),
    (["report", "--store", "sqlite:///{store}", "--out", "{dir}"], 2, "is a folder"),
    (["report", "--store", "sqlite:///{store}", "--format", "html", "--out", "{text}"], 2, "is a file"),
    (["report", "--store", "sqlite:///{store}", "--out", "/proc/lossbench/table.md"], 2, "cannot write"),
    (["report", "--store", "sqlite:///{store}", "--targets", "{yaml}"], 2, "is not valid YAML at line"),
    (["report", "--store", "sqlite:///{store}", "--targets", "{text}"], 2, "is not a targets file"),
    (["report", "--store", "sqlite:///{store}", "--rows", "nope"], 2, "unknown label(s) nope"),
    (["report", "--store", "sqlite:///{store}", "--cols", "dataset,dataset.imbalance_ratio"], 0, ""),
    (["report", "--store", "sqlite:///{store}", "--experiment", "nope"], 1, "no completed runs"),
    (["list", "nope"], 2, "unknown group 'nope'"),
]


@pytest.fixture(autouse=True)
def _restore_logging():
    """An in-process `lossbench run` lets Hydra set up logging onto this test's captured streams; undo it."""
    import logging

    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict))]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers if isinstance(lg, logging.Logger)]
    yield
    for lg, handlers, level, propagate in saved:
        lg.handlers[:], lg.level, lg.propagate = handlers, level, propagate


def _record(run_id: str, dataset: str, ratio: float | None, seed: int) -> RunRecord:
    labels = {"experiment": None, "dataset": dataset, "model": "mlp", "loss": "ce", "weighting": "none",
              "sampler": "instance", "stage2": "none", "trainer": "smoke"}  # fmt: skip
    config = {"seed": seed, "dataset": {"imbalance_ratio": ratio}, "loss": {"name": "ce"}}
    return RunRecord(run_id=run_id, variant=dataset, labels=labels, seed=seed, config=config)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad_inputs")
    store = Store(f"sqlite:///{root}/store.db")
    for i, (dataset, ratio) in enumerate([("digits", 10.0), ("digits", 10.0), ("yeast", None)] * 40):
        rec = _record(f"r{i}", dataset, ratio, seed=i)
        store.claim(rec)
        store.finish(rec.run_id, "completed", metrics={"last/test/acc": 0.5 + 0.001 * i},
                     history_rows=[{"epoch": 0, "train/loss": 1.0}])  # fmt: skip
    store.engine.dispose()
    foreign = sqlite3.connect(root / "foreign.db")
    foreign.execute("create table runs (id integer primary key, note text)")
    foreign.execute("insert into runs (note) values ('not lossbench')")
    foreign.commit()
    foreign.close()
    data = (root / "store.db").read_bytes()
    page = 4096
    assert len(data) > 5 * page, "the store must span several pages to damage one"
    (root / "corrupt.db").write_bytes(data[: 3 * page] + b"\xff" * page + data[4 * page :])
    (root / "empty.db").write_bytes(b"")
    (root / "text.db").write_text("hello, not a database\n")
    (root / "bad.yaml").write_text("targets: [a: b\n")
    (root / "folder.db").mkdir()
    return {"store": root / "store.db", "foreign": root / "foreign.db", "corrupt": root / "corrupt.db",
            "empty": root / "empty.db", "text": root / "text.db", "yaml": root / "bad.yaml",
            "dir": root / "folder.db", "missing": root / "typo" / "lossbench.db", "root": root}  # fmt: skip


def snapshot(root: Path) -> dict[str, str]:
    """Hash of every file under `root` (SQLite's transient -wal/-shm files aside)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    } | {str(p.relative_to(root)) + "/": "dir" for p in root.rglob("*") if p.is_dir()}


@pytest.mark.parametrize(("args", "code", "fragment"), CASES, ids=[" ".join(c[0][:4]) for c in CASES])
def test_bad_input_fails_in_one_line_and_changes_nothing(args, code, fragment, files, capsys, monkeypatch):
    monkeypatch.chdir(files["root"])
    argv = [a.format(**files) for a in args]
    before = snapshot(files["root"])
    try:
        main(argv)
        rc = 0
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    assert snapshot(files["root"]) == before, "a file was changed or created"
    assert rc == code, err
    if code:
        lines = [ln for ln in err.strip().splitlines() if ln.startswith("lossbench:")]
        assert len(err.strip().splitlines()) == 1 and len(lines) == 1, err
        assert fragment in lines[0], lines[0]
        assert len(lines[0]) < 400


def _terminal_sigint() -> None:
    """In the child: Ctrl-C as a terminal delivers it (default disposition, not blocked), whatever the test
    process inherited or set; a child that starts with SIGINT ignored never sees KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_ctrl_c_marks_the_held_run_interrupted_and_a_rerun_completes_every_cell_once(tmp_path):
    url = f"sqlite:///{tmp_path}/grid.db"
    grid = ["run", "-m", "dataset=synthetic", "dataset.n_max=40", "dataset.test_per_class=20",
            "trainer=smoke", "trainer.epochs=400", "trainer.eval_every=400", "seed=0,1", f"store.url={url}"]  # fmt: skip
    exe = Path(sys.executable).with_name("lossbench")
    proc = subprocess.Popen(
        [str(exe), *grid], cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        preexec_fn=_terminal_sigint,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # wait until a cell is being trained
            if (tmp_path / "grid.db").exists():
                con = sqlite3.connect(f"file:{tmp_path}/grid.db?mode=ro", uri=True)
                try:
                    running = con.execute("select count(*) from runs where status='running'").fetchone()[0]
                except sqlite3.OperationalError:
                    running = 0
                con.close()
                if running:
                    break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("lossbench: interrupted (Ctrl-C)")
    con = sqlite3.connect(f"{tmp_path}/grid.db")
    statuses = [s for (s,) in con.execute("select status from runs")]
    con.close()
    assert "running" not in statuses and "interrupted" in statuses
    rerun = subprocess.run([str(exe), *grid], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    con = sqlite3.connect(f"{tmp_path}/grid.db")
    rows = con.execute("select status, count(*) from runs group by status").fetchall()
    con.close()
    assert rows == [("completed", 2)]
    done_before = statuses.count("completed")
    assert f"{2 - done_before} completed, {done_before} skipped" in rerun.stderr


@pytest.mark.parametrize("stack, held", [("off", 1), ("auto", 3)])
def test_a_store_that_cannot_be_written_ends_the_grid_in_one_line_with_its_summary(
    tmp_path, capsys, monkeypatch, stack, held
):
    """Disk full on the store: the grid stops at once (no cell launched unrecorded), summary + one line.

    One at a time the first cell is the only one claimed; stacked, the group's three seeds were
    claimed together. Either way the rows the dead process held stay `running` (the store cannot be
    written to release them) and the next rerun takes them over as stale.
    """
    import sqlalchemy as sa

    from lossbench import run
    from lossbench.store.db import Store as StoreClass

    def full(self, *args, **kwargs):
        raise sa.exc.OperationalError(
            "UPDATE runs ...", {}, sqlite3.OperationalError("database or disk is full")
        )

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(StoreClass, "finish", full)
    monkeypatch.setattr(run, "SESSION", run.Session())
    url = f"sqlite:///{tmp_path}/full.db"
    argv = ["run", "-m", "dataset=synthetic", "dataset.n_max=20", "dataset.test_per_class=10",
            "dataset.val_per_class=5", "trainer=smoke", "trainer.epochs=1", "seed=0,1,2", f"store.url={url}", f"trainer.stack={stack}"]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 1 and "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("lossbench:")]
    assert lines[-2] == "lossbench: 0 completed, 0 skipped, 0 diverged, 0 failed, 3 not run"
    assert "cannot write to the store" in lines[-1] and "database or disk is full" in lines[-1]
    assert StoreClass.reader(url).counts()["running"] == held  # owner gone: the next rerun takes them over


def test_ldam_without_margin_is_accepted_with_a_warning_the_run_records(tmp_path):
    from lossbench import run
    from lossbench.config import compose

    small = ["dataset=synthetic", "dataset.n_max=20", "dataset.test_per_class=10", "dataset.val_per_class=5",
             "trainer=smoke", "trainer.epochs=1", f"store.url=sqlite:///{tmp_path}/w.db"]  # fmt: skip
    assert run.build_components(compose([*small, "loss=ldam"])).warnings == []
    cfg = compose([*small, "loss=ldam", "loss.max_m=0"])
    assert run.build_components(cfg).warnings == [
        "loss: max_m=0: no margins, so this is cross-entropy on 30-scaled logits, not LDAM"
    ]
    choices = {"dataset": "synthetic", "loss": "ldam", "trainer": "smoke"}
    assert run.run_cell(cfg, choices) == "completed"
    with sqlite3.connect(tmp_path / "w.db") as con:
        (env,) = con.execute("select environment from runs").fetchone()
    assert "max_m=0: no margins" in env


def test_sigterm_takes_the_same_exit_path_and_marks_held_runs_interrupted(tmp_path, capsys, monkeypatch):
    from lossbench import run

    url = f"sqlite:///{tmp_path}/term.db"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run, "SESSION", run.Session())

    def main_that_gets_sigterm() -> None:  # stands in for the Hydra app while it holds a run
        store = run.SESSION.stores[url]  # opened by preflight
        store.claim(_record("held", "digits", 10.0, seed=0))
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler raises long before this returns

    monkeypatch.setattr(run, "main", main_that_gets_sigterm)
    with pytest.raises(SystemExit) as exc:
        main(["run", "dataset=synthetic", "dataset.n_max=20", "dataset.test_per_class=10",
              "dataset.val_per_class=5", "trainer=smoke", f"store.url={url}"])  # fmt: skip
    err = capsys.readouterr().err
    assert exc.value.code == 143 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("lossbench: terminated (SIGTERM)")
    assert Store.reader(url).status_of("held") == "interrupted"
    from lossbench.cli import _on_sigterm

    assert signal.getsignal(signal.SIGTERM) is not _on_sigterm  # the previous handler is back


def test_a_store_opened_for_reading_refuses_writes(files):
    import sqlalchemy as sa

    before = files["store"].read_bytes()
    reader = Store.reader(f"sqlite:///{files['store']}")
    with pytest.raises(sa.exc.OperationalError, match="readonly|read-only"):
        with reader.engine.connect() as conn:
            conn.exec_driver_sql("DELETE FROM runs")
    assert files["store"].read_bytes() == before
