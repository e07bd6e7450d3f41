"""The composition root: the only module that reads the config and wires the pipeline together.

`lossbench run [overrides]` (or `python -m lossbench.run`) is this Hydra app. Every cell of a
multirun runs in this one process, so torch is imported once and each dataset is loaded once.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import sqlalchemy as sa
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from lossbench.checks import check_device, check_parameter_types, check_schedules
from lossbench.config import CONFIG_DIR, config_groups
from lossbench.data.base import Dataset
from lossbench.data.spec import DataSpec
from lossbench.groups import COMPONENT_GROUPS, TOP_LEVEL_KEYS
from lossbench.identity import check_seed
from lossbench.store.db import ClaimLost, Store, StoreError, sqlite_file
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


class Stop(BaseException):  # noqa: N818  (not an error: the one way out of a grid that must end now)
    """End the whole `lossbench run` now (a store that cannot be written, Ctrl-C, SIGTERM).

    A `BaseException`, so neither a cell's own handling nor Hydra's job runner swallows it; the
    command line catches it, marks the runs this process holds as `status`, prints the grid summary
    and exits with `code` and the one-line `message`.
    """

    def __init__(self, message: str, code: int = 1, status: str = "failed") -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


@dataclass
class Components:
    """Everything a run needs, instantiated (and so validated) before it trains."""

    dataset: Dataset
    model: Any
    loss: Any
    weighting: Any
    sampler: Any
    stage2: Any
    trainer: TrainerConfig
    seed: int
    warnings: list[str] = field(default_factory=list)  # accepted but unusual settings, kept in the record


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


def _one_line(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, InstantiationException) and exc.__cause__ else exc
    lines = [ln.strip() for ln in str(cause).splitlines() if ln.strip()]
    return lines[0] if lines else type(cause).__name__


def build_components(
    cfg: DictConfig,
    cache: dict[tuple[str, str], Any] | None = None,
    choices: Mapping[str, Any] | None = None,
) -> Components:
    """Instantiate and check every component of a cell: the one preflight, shared by `run` and the CLI.

    Raises `ValueError` with a one-line message naming the group and the fix on the first problem:
    the seed, the trainer (device included), each component's parameters (types first), schedules
    beyond the last epoch, and the model built on the dataset's shapes. Those come from
    `Dataset.shapes()` when a dataset knows them without reading its files (the large image sets);
    otherwise the data is loaded into `SESSION`'s cache, which the run itself then reuses, so
    nothing is loaded twice in one process (and small datasets' split sizes are checked too).
    `cache` (the CLI's preflight over a grid) keeps components already built for an identical node;
    a run passes none, so its components, the seeded model included, are built for it alone.
    `choices` (group -> option name) lets the messages name the option: `invalid loss 'focal': ...`.
    """
    known = {*TOP_LEVEL_KEYS, *config_groups()}
    unknown = sorted(str(k) for k in cfg if k not in known)
    if unknown:
        raise ValueError(
            f"unknown top-level key(s) {', '.join(unknown)}: nothing reads them; remove them "
            f"(top-level keys: {', '.join(sorted(known - {'hydra'}))})"
        )
    check_task_kinds(cfg, dict(choices or {}))  # the dataset's task kind vs each recipe's: one line
    seed = check_seed(cfg.seed)
    try:
        trainer = TrainerConfig(**OmegaConf.to_container(cfg.trainer, resolve=True))  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid trainer: {exc}") from exc
    check_device(trainer.device)
    starts = {g: cfg[g].get("start_epoch") for g in COMPONENT_GROUPS if isinstance(cfg.get(g), DictConfig)}
    check_schedules({g: v for g, v in starts.items() if isinstance(v, int)}, trainer.epochs)
    cache = {} if cache is None else cache
    built: dict[str, Any] = {}
    for group in [g for g in COMPONENT_GROUPS if g != "model"]:
        built[group] = _build(cfg, group, cache, choices)
    shapes = built["dataset"].shapes()
    if shapes is None:
        data = load_data(cfg, built["dataset"])
        shapes = (tuple(data.input_shape), data.task.output_width)
    seed_everything(seed)  # the model's initialisation depends on the seed alone
    shape = {"input_shape": list(shapes[0]), "num_classes": shapes[1]}
    built["model"] = _build(cfg, "model", cache, choices, **shape)
    # A component flags a setting it accepts but that is rarely meant (LDAM's max_m=0) in its
    # `config_warnings`; the run stores them in its record (`environment.warnings`) and logs them.
    warnings = [f"{g}: {w}" for g, obj in built.items() for w in getattr(obj, "config_warnings", ())]
    return Components(
        trainer=trainer,
        seed=seed,
        model=built["model"],
        warnings=warnings,
        **{g: built[g] for g in built if g != "model"},
    )


def _build(
    cfg: DictConfig,
    group: str,
    cache: dict[tuple[str, str], Any],
    choices: Mapping[str, Any] | None,
    **extra: Any,
) -> Any:
    """Instantiate `cfg[group]` (once per identical node in `cache`); `ValueError` naming the group."""
    key = (group, OmegaConf.to_yaml(cfg[group], resolve=True) + repr(sorted(extra.items())))
    if key in cache:  # preflight over a grid: an identical node was built and checked already
        return cache[key]
    try:
        values = OmegaConf.to_container(cfg[group], resolve=True)
        check_parameter_types(group, values if isinstance(values, dict) else {})
        obj = instantiate(cfg[group], _convert_="all", **extra)
    except Exception as exc:  # ValueError, or a constructor's TypeError, ImportError, ...: their own words
        name = (choices or {}).get(group)
        raise ValueError(f"invalid {group}{f' {name!r}' if name else ''}: {_one_line(exc)}") from exc
    cache[key] = obj  # a run passes a fresh cache: its components (the seeded model) are its own
    return obj


def load_data(cfg: DictConfig, dataset: Dataset) -> DataSpec:
    """The dataset's `DataSpec`, loaded once per process per dataset config."""
    key = OmegaConf.to_yaml(cfg.dataset, resolve=True)
    if key not in SESSION.data:
        SESSION.data[key] = dataset.load()
    return SESSION.data[key]


def get_store(url: str, node: DictConfig) -> Store:
    """The store at `url` (config `node`) opened for writing, once per process per URL.

    Opening refuses a foreign or corrupted database before anything is written (`StoreError`); a
    store it creates is announced on stderr, so a mistyped path does not go unnoticed.
    """
    if url not in SESSION.stores:
        try:
            store = instantiate(node)
        except InstantiationException as exc:  # the store's own one line (StoreError), not Hydra's wrapper
            if isinstance(exc.__cause__, ValueError):
                raise exc.__cause__ from None
            raise
        if store.created and sqlite_file(url) is not None:
            print(f"lossbench: created a new store at {sqlite_file(url)}", file=sys.stderr)
        SESSION.stores[url] = store
    return SESSION.stores[url]


def run_cell(cfg: DictConfig, choices: dict[str, Any]) -> str:
    """Train and evaluate one cell; write its record. Returns its status (or `skipped`)."""
    components = build_components(cfg, choices=choices)
    store = get_store(str(cfg.store.url), cfg.store)
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
    if components.warnings:
        env["warnings"] = components.warnings
        for warning in components.warnings:
            log.warning("%s: %s", title, warning)
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
        model = components.model
        c = components
        prepare(data.task, data.train.y, c.loss, c.weighting, c.sampler, c.stage2)
        evaluator = Evaluator.of(data, c.trainer, resolve_device(c.trainer.device))
        if sink is not None:
            sink.start(record.run_id, record.config, record.labels)
        result = fit(
            model, components.loss, components.weighting, components.sampler, data, components.trainer,
            seed=components.seed, on_epoch_end=on_epoch_end, checkpoint_dir=ckpt, evaluator=evaluator,
        )  # fmt: skip
        if result.resumed_from is not None:
            env["resumed_from_epoch"] = result.resumed_from
            log.info("resumed %s from its checkpoint after epoch %d", title, result.resumed_from)
        # stage 2 (cRT, tau-norm, ...): changes `model` in place; the metrics become the final model's
        result = components.stage2.run(
            model, data, c.trainer, components.seed, stage1=result, evaluator=evaluator
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


def release_all(status: str, reason: str) -> int:
    """Mark every run this process holds in any store as `status`; the number of runs so marked."""
    released = 0
    for store in SESSION.stores.values():
        n = store.release_claims(status, reason)
        SESSION.outcomes.extend([status] * n)
        released += n
    return released


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig) -> str:
    """The Hydra app behind `lossbench run`.

    A cell's own failure is recorded in its row and the grid goes on; anything that escapes a cell
    (the store cannot be opened or written, a component that preflight could not check) ends the
    whole grid through `Stop`, which the command line turns into one line and a summary.
    """
    try:
        return run_cell(cfg, dict(HydraConfig.get().runtime.choices))
    except StoreError as exc:
        raise Stop(str(exc), code=2) from exc
    except (sa.exc.OperationalError, OSError) as exc:
        text = _one_line(getattr(exc, "orig", None) or exc)
        raise Stop(f"cannot write to the store {cfg.store.url} ({text}); free disk space or fix its "
                   "permissions, then rerun the same command to resume") from exc  # fmt: skip
    except ValueError as exc:
        raise Stop(_one_line(exc), code=2) from exc
    except Exception as exc:  # noqa: BLE001
        raise Stop(f"{type(exc).__name__}: {_one_line(exc)}") from exc


if __name__ == "__main__":
    main()
