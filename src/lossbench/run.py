"""The composition root: the only module that reads the config and wires the pipeline together.

`lossbench run [overrides]` (or `python -m lossbench.run`) is this Hydra app. Every cell of a
multirun runs in this one process, so torch is imported once and each dataset is loaded once.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from lossbench.config import CONFIG_DIR
from lossbench.data.base import Dataset
from lossbench.data.spec import DataSpec
from lossbench.store.db import ClaimLost, Store
from lossbench.store.record import RunRecord
from lossbench.tasks.base import prepare
from lossbench.tasks.compatible import RECIPE_GROUPS, check_compatible, kind_of_dataset
from lossbench.train.checkpoint import remove_checkpoints
from lossbench.train.config import TrainerConfig
from lossbench.train.evaluate import Evaluator
from lossbench.train.loop import Diverged, fit, resolve_device, seed_everything

log = logging.getLogger("lossbench")


@dataclass
class Session:
    """Per-process state shared by the cells of a multirun."""

    data: dict[str, DataSpec] = field(default_factory=dict)
    stores: dict[str, Store] = field(default_factory=dict)
    outcomes: list[str] = field(default_factory=list)  # one status per cell run in this process
    progress: Any = None  # a tqdm bar over the grid's cells, when the cells run in this process


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


def check_task_kinds(cfg: DictConfig, choices: dict[str, Any] | None = None) -> None:
    """Raise `ValueError` (one line, naming the compatible options) if a recipe does not support the dataset's task kind.

    Reads the classes' declarations only (`Dataset.task_kind`, `task_kinds`): nothing is built or loaded.
    """
    choices = choices or {}

    def name(group: str) -> str:
        return str(choices.get(group) or _option_of(group, cfg[group]))

    kind = kind_of_dataset(get_class(str(cfg.dataset._target_)))
    chosen = {group: (name(group), get_class(str(cfg[group]._target_))) for group in RECIPE_GROUPS}
    check_compatible(CONFIG_DIR, name("dataset"), kind, chosen)


def _option_of(group: str, node: DictConfig) -> str:
    """The option of `group` whose YAML `node` was composed from (its class name if that is ambiguous).

    Options sharing a `_target_` (the UCI tables, focal_l1/focal_mse) are told apart by their own values.
    """
    matches = []
    for path in sorted((CONFIG_DIR / group).glob("*.yaml")):
        yaml = OmegaConf.load(path)
        if yaml.get("_target_") != node.get("_target_"):
            continue
        plain = [
            k for k in yaml if not str(k).startswith("_") and not OmegaConf.is_interpolation(yaml, str(k))
        ]
        if all(k in node and node[k] == yaml[k] for k in plain):
            matches.append(path.stem)
    return matches[0] if len(matches) == 1 else str(node._target_).rsplit(".", 1)[-1]


def build_components(cfg: DictConfig, choices: dict[str, Any] | None = None) -> Components:
    """Instantiate the cheap components; invalid parameters and incompatible task kinds raise here, before any training."""
    check_task_kinds(cfg, choices)
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


def run_cell(cfg: DictConfig, choices: dict[str, Any]) -> str:
    """Train and evaluate one cell; write its record. Returns its status (or `skipped`)."""
    components = build_components(cfg, choices)
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
        return _outcome("skipped")
    sink = instantiate(cfg.logger) if cfg.get("logger") else None
    status, metrics, rows, error, meta = "failed", None, [], None, None
    env = {**record.environment, "device": _device_name(components.trainer.device)}
    ckpt = (
        Path(cfg.paths.results_dir) / "checkpoints" / record.run_id
        if components.trainer.checkpoint_every
        else None
    )

    def on_epoch_end(row: dict[str, Any]) -> None:
        store.heartbeat(record.run_id)  # raises ClaimLost if another process took the run over
        if sink is not None:
            sink.log(row)

    try:
        data = load_data(cfg, components.dataset)
        meta = dict(data.meta)
        seed_everything(int(cfg.seed))
        model = instantiate(cfg.model, input_shape=list(data.input_shape), num_classes=data.task.output_width)
        c = components
        prepare(data.task, data.train.y, c.loss, c.weighting, c.sampler, c.stage2)
        evaluator = Evaluator.of(data, c.trainer, resolve_device(c.trainer.device))
        if sink is not None:
            sink.start(record.run_id, record.config, record.labels)
        result = fit(
            model, components.loss, components.weighting, components.sampler, data, components.trainer,
            seed=int(cfg.seed), on_epoch_end=on_epoch_end, checkpoint_dir=ckpt, evaluator=evaluator,
        )  # fmt: skip
        if result.resumed_from is not None:
            env["resumed_from_epoch"] = result.resumed_from
            log.info("resumed %s from its checkpoint after epoch %d", title, result.resumed_from)
        # stage 2 (cRT, tau-norm, ...): changes `model` in place; the metrics become the final model's
        result = components.stage2.run(
            model, data, c.trainer, int(cfg.seed), stage1=result, evaluator=evaluator
        )
        status, metrics, rows = "completed", result.metrics, result.history
        shown = "test/" + evaluator.select_metric.split("/", 1)[1]
        log.info("done %s: %s %.4f (last epoch)", title, shown, metrics[f"last/{shown}"])
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
        store.finish(
            record.run_id,
            status,
            metrics=metrics,
            history_rows=rows,
            data_meta=meta,
            environment=env,
            error=error,
        )
    except ClaimLost as exc:
        log.warning("gave up %s: %s", title, exc)
        return _outcome("lost")
    if status in ("completed", "diverged"):
        remove_checkpoints(ckpt)
    if sink is not None:
        sink.finish(status, metrics or {})
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
