"""The composition root: the only module that reads the config and wires the pipeline together.

`lossbench run [overrides]` (or `python -m lossbench.run`) is this Hydra app. Every cell of a
multirun runs in this one process, so torch is imported once and each dataset is loaded once.
"""

from __future__ import annotations

import hashlib
import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lossbench.config import CONFIG_DIR
from lossbench.data.base import Dataset
from lossbench.data.spec import DataSpec
from lossbench.store.db import ClaimLost, Store
from lossbench.store.record import RunRecord, run_id_of
from lossbench.train.checkpoint import remove_checkpoints, rng_state
from lossbench.train.config import TrainerConfig
from lossbench.train.loop import Diverged, FitResult, fit, resolve_device, seed_everything
from lossbench.train.stacked import Member, fit_stacked, unstackable

log = logging.getLogger("lossbench")


@dataclass
class Session:
    """Per-process state shared by the cells of a multirun."""

    data: dict[str, DataSpec] = field(default_factory=dict)
    stores: dict[str, Store] = field(default_factory=dict)
    outcomes: list[str] = field(default_factory=list)  # one status per cell run in this process
    progress: Any = None  # a tqdm bar over the grid's cells, when the cells run in this process
    pending: list[tuple[DictConfig, dict[str, Any]]] | None = (
        None  # cells queued for stacking (`run_pending`)
    )


SESSION = Session()


@dataclass
class Components:
    """Everything a run needs, instantiated (and so validated) before any data is loaded."""

    dataset: Dataset
    loss: Any
    weighting: Any
    sampler: Any
    stage2: Any
    trainer: TrainerConfig


def build_components(cfg: DictConfig) -> Components:
    """Instantiate the cheap components; invalid parameters raise here, before any training."""
    return Components(
        dataset=instantiate(cfg.dataset, _convert_="all"),
        loss=instantiate(cfg.loss, _convert_="all"),
        weighting=instantiate(cfg.weighting, _convert_="all"),
        sampler=instantiate(cfg.sampler, _convert_="all"),
        stage2=instantiate(cfg.stage2, _convert_="all"),
        trainer=TrainerConfig(**OmegaConf.to_container(cfg.trainer, resolve=True)),  # type: ignore[arg-type]
    )


def load_data(cfg: DictConfig, dataset: Dataset) -> DataSpec:
    """The dataset's `DataSpec`, loaded once per process per dataset config."""
    key = OmegaConf.to_yaml(cfg.dataset, resolve=True)
    if key not in SESSION.data:
        SESSION.data[key] = dataset.load()
    return SESSION.data[key]


def get_store(cfg: DictConfig) -> Store:
    """The store for `cfg.store`, opened once per process per URL."""
    url = str(cfg.store.url)
    if url not in SESSION.stores:
        SESSION.stores[url] = instantiate(cfg.store)
    return SESSION.stores[url]


@dataclass
class Cell:
    """A claimed cell on its way through the pipeline (`_claim` -> `_build` -> train -> `_finish`)."""

    cfg: DictConfig
    record: RunRecord
    title: str
    store: Store
    components: Components
    sink: Any
    env: dict[str, Any]
    ckpt: Path | None
    data: DataSpec | None = None
    model: Any = None
    meta: dict[str, Any] | None = None
    aug_state: dict[str, Any] | None = None  # torch's RNG state right after the model was built


def run_cell(cfg: DictConfig, choices: dict[str, Any]) -> str:
    """Train and evaluate one cell; write its record. Returns its status (or `skipped`).

    While `SESSION.pending` is a list (`lossbench run -m` with the in-process launcher), a cell with
    `trainer.stack=auto` is only queued (status `deferred`); `run_pending` then trains the queued
    cells in stacked groups.
    """
    if SESSION.pending is not None and cfg.trainer.stack == "auto":
        SESSION.pending.append((cfg, choices))
        return "deferred"
    cell = _claim(cfg, choices)
    if cell is None:
        return _outcome("skipped")
    try:
        _build(cell)
    except Exception as exc:
        return _finish(cell, exc)
    return _finish(cell, _train_alone(cell))


def stack_key(cfg: DictConfig) -> str:
    """Cells with equal keys can train as one stacked model: all but seed, loss and weighting equal."""
    config = OmegaConf.to_container(cfg, resolve=True)
    return run_id_of({k: v for k, v in config.items() if k not in ("seed", "loss", "weighting")})  # type: ignore[union-attr]


def run_pending() -> None:
    """Train the queued cells: those sharing a `stack_key` as stacked groups, the rest alone."""
    pending, SESSION.pending = SESSION.pending or [], None
    groups: dict[str, list[tuple[DictConfig, dict[str, Any]]]] = {}
    for cfg, choices in pending:
        groups.setdefault(stack_key(cfg), []).append((cfg, choices))
    for cells in groups.values():
        if len(cells) == 1:
            run_cell(*cells[0])
        else:
            run_group(cells)


def run_group(cells: list[tuple[DictConfig, dict[str, Any]]]) -> list[str]:
    """Claim, build and train `cells` as one stacked group (`train/stacked.py`); each writes its record.

    Cells already completed (or running elsewhere) are left out; a cell that fails to build, or
    whose model cannot be stacked, is recorded or trained alone. Returns the statuses.
    """
    claimed = []
    for cfg, choices in cells:
        cell = _claim(cfg, choices)
        if cell is None:
            _outcome("skipped")
            continue
        try:
            _build(cell)
        except Exception as exc:
            _finish(cell, exc)
            continue
        if unstackable(cell.model) is not None:
            _finish(cell, _train_alone(cell))
            continue
        claimed.append(cell)
    if not claimed:
        return []
    trainer = claimed[0].components.trainer
    ckpt = None
    if trainer.checkpoint_every:
        ids = hashlib.sha256(" ".join(sorted(c.record.run_id for c in claimed)).encode()).hexdigest()[:20]
        ckpt = Path(claimed[0].cfg.paths.results_dir) / "checkpoints" / f"stack-{ids}"
    members = [
        Member(c.model, c.components.loss, c.components.weighting, c.components.sampler,
               int(c.cfg.seed), c.aug_state or {}, _heartbeat(c))
        for c in claimed
    ]  # fmt: skip
    log.info("training %d runs stacked: %s", len(members), "; ".join(c.title for c in claimed))
    try:
        results: list[FitResult | BaseException] = fit_stacked(members, claimed[0].data, trainer, ckpt)  # type: ignore[arg-type]
    except Exception as exc:  # the whole group failed: every member records it
        results = [exc] * len(claimed)
    statuses = [_finish(c, r) for c, r in zip(claimed, results, strict=True)]
    if ckpt is not None and all(s in ("completed", "diverged") for s in statuses):
        remove_checkpoints(ckpt)
    return statuses


def _train_alone(cell: Cell) -> FitResult | BaseException:
    c = cell.components
    try:
        return fit(
            cell.model, c.loss, c.weighting, c.sampler, cell.data, c.trainer,  # type: ignore[arg-type]
            seed=int(cell.cfg.seed), on_epoch_end=_heartbeat(cell), checkpoint_dir=cell.ckpt,
        )  # fmt: skip
    except Exception as exc:
        return exc


def _claim(cfg: DictConfig, choices: dict[str, Any]) -> Cell | None:
    """Instantiate the cell's components and claim its run in the store; None if it is skipped."""
    components = build_components(cfg)
    store = get_store(cfg)
    record = RunRecord.start(OmegaConf.to_container(cfg, resolve=True), choices)  # type: ignore[arg-type]
    title = (
        " ".join(f"{k}={v}" for k, v in record.labels.items() if v and k != "trainer")
        + f" seed={record.seed}"
    )
    if not store.claim(record, force=bool(cfg.force)):
        why = (
            "completed; force=true re-runs it"
            if store.status_of(record.run_id) == "completed"
            else "running elsewhere"
        )
        log.info("skip %s (run %s %s)", title, record.run_id, why)
        return None
    sink = instantiate(cfg.logger) if cfg.get("logger") else None
    env = {**record.environment, "device": _device_name(components.trainer.device)}
    ckpt = (
        Path(cfg.paths.results_dir) / "checkpoints" / record.run_id
        if components.trainer.checkpoint_every
        else None
    )
    return Cell(cfg, record, title, store, components, sink, env, ckpt)


def _build(cell: Cell) -> None:
    """Load the data, build the model with the cell's seed and fit the components to the counts."""
    cfg, c = cell.cfg, cell.components
    cell.data = load_data(cfg, c.dataset)
    cell.meta = dict(cell.data.meta)
    seed_everything(int(cfg.seed))
    cell.model = instantiate(
        cfg.model, input_shape=list(cell.data.input_shape), num_classes=cell.data.num_classes
    )
    cell.aug_state = rng_state()
    c.loss.fit(list(cell.data.class_counts))
    c.weighting.fit(list(cell.data.class_counts))
    c.sampler.fit(cell.data.train.y, cell.data.num_classes)
    if cell.sink is not None:
        cell.sink.start(cell.record.run_id, cell.record.config, cell.record.labels)


def _heartbeat(cell: Cell) -> Any:
    def on_epoch_end(row: dict[str, Any]) -> None:
        cell.store.heartbeat(cell.record.run_id)  # raises ClaimLost if another process took the run over
        if cell.sink is not None:
            cell.sink.log(row)

    return on_epoch_end


def _finish(cell: Cell, result: FitResult | BaseException) -> str:
    """Run stage 2 on a trained cell and write its record; `result` is stage 1's or what stopped it."""
    status, metrics, rows, error = "failed", None, [], None
    title, env = cell.title, cell.env
    try:
        if isinstance(result, BaseException):
            raise result
        env["execution"] = result.execution
        if result.resumed_from is not None:
            env["resumed_from_epoch"] = result.resumed_from
            log.info("resumed %s from its checkpoint after epoch %d", title, result.resumed_from)
        # stage 2 (cRT, tau-norm, ...): changes the model in place; the metrics become the final model's
        result = cell.components.stage2.run(
            cell.model, cell.data, cell.components.trainer, int(cell.cfg.seed), stage1=result
        )
        status, metrics, rows = "completed", result.metrics, result.history
        log.info("done %s: test/acc %.4f (last epoch)", title, metrics["last/test/acc"])
    except Diverged as exc:
        status, rows, error = "diverged", exc.history, str(exc)
        log.warning("diverged %s: %s", title, exc)
    except ClaimLost as exc:  # another process runs it now and writes its record
        log.warning("gave up %s: %s", title, exc)
        return _outcome("lost")
    except (torch.OutOfMemoryError, MemoryError) as exc:
        error = f"{traceback.format_exc()}out of memory: {type(exc).__name__}: {exc}"  # last line: the reason
        log.error("failed %s: out of memory: %s", title, exc)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # leave the memory to the next cell
    except Exception as exc:  # recorded, never fatal to the grid
        error = traceback.format_exc()
        log.error("failed %s: %s: %s", title, type(exc).__name__, exc)
    try:
        cell.store.finish(
            cell.record.run_id,
            status,
            metrics=metrics,
            history_rows=rows,
            data_meta=cell.meta,
            environment=env,
            error=error,
        )
    except ClaimLost as exc:
        log.warning("gave up %s: %s", title, exc)
        return _outcome("lost")
    if status in ("completed", "diverged"):
        remove_checkpoints(cell.ckpt)
    if cell.sink is not None:
        cell.sink.finish(status, metrics or {})
    return _outcome(status)


def _outcome(status: str) -> str:
    SESSION.outcomes.append(status)
    if SESSION.progress is not None:
        SESSION.progress.update()
    return status


def _device_name(name: str) -> str:
    try:
        device = resolve_device(name)
    except ValueError:
        return name
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> str:
    """The Hydra app behind `lossbench run`."""
    return run_cell(cfg, dict(HydraConfig.get().runtime.choices))


if __name__ == "__main__":
    main()
