"""The composition root: the only module that reads the config and wires the pipeline together.

`lossbench run [overrides]` (or `python -m lossbench.run`) is this Hydra app. Every cell of a
multirun runs in this one process, so torch is imported once and each dataset is loaded once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import sqlalchemy as sa
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import get_class, get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from lossbench.checks import check_device, check_parameter_types, check_schedules
from lossbench.config import CONFIG_DIR, config_groups, load_yaml, options
from lossbench.data.base import Dataset
from lossbench.data.spec import DataSpec
from lossbench.groups import COMPONENT_GROUPS, TOP_LEVEL_KEYS
from lossbench.identity import check_seed, run_id_of
from lossbench.models.multitask import MultiTaskModel
from lossbench.store.db import ClaimLost, Store, StoreError, sqlite_file
from lossbench.store.record import RunRecord
from lossbench.tasks.base import MULTITASK, prepare
from lossbench.tasks.compatible import RECIPE_GROUPS, check_compatible, kind_of_dataset, kinds_of, target_of
from lossbench.tasks.multitask import MultiTask
from lossbench.train.checkpoint import remove_checkpoints, rng_state
from lossbench.train.config import TrainerConfig
from lossbench.train.evaluate import Evaluator
from lossbench.train.loop import Diverged, FitResult, fit, resolve_device, seed_everything
from lossbench.train.multitask import MultiTaskObjective
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
    task_weighting: Any = None  # multi-task datasets only


def check_task_kinds(cfg: DictConfig, choices: dict[str, Any] | None = None) -> None:
    """Raise `ValueError` (one line, naming the compatible options) if a recipe does not support the dataset's task kind.

    Reads the classes' declarations only (`Dataset.task_kind`, `task_kinds`): nothing is built or loaded.
    """
    choices = choices or {}

    def name(group: str) -> str:
        return str(choices.get(group) or _option_of(group, cfg[group]))

    dataset_class = get_class(str(cfg.dataset._target_))
    kind = kind_of_dataset(dataset_class)
    chosen = {group: (name(group), get_class(str(cfg[group]._target_))) for group in RECIPE_GROUPS}
    # multi-task: loss and weighting serve the sub-tasks of their kinds (the others get ce/mse, plain mean)
    if kind == MULTITASK:
        check_multitask(name("dataset"), dataset_class, chosen)
        chosen = {g: chosen[g] for g in ("sampler", "stage2")}
    check_compatible(CONFIG_DIR, name("dataset"), kind, chosen)
    multitask_model = issubclass(get_class(str(cfg.model._target_)), MultiTaskModel)
    if multitask_model != (kind == MULTITASK):
        valid = [n for n in options("model") if _is_multitask_model(n) == (kind == MULTITASK)]
        raise ValueError(f"model {name('model')!r} does not fit the {kind} dataset {name('dataset')!r}; "
                         f"{kind} models: {', '.join(valid)}")  # fmt: skip
    tasks = cfg.dataset.get("tasks")
    if kind == MULTITASK and cfg.get("task_weighting") is not None and tasks is not None:
        need = get_class(str(cfg.task_weighting._target_)).min_tasks
        if len(tasks) < need:
            raise ValueError(f"task_weighting {name('task_weighting')!r} needs >= {need} sub-tasks, dataset.tasks="
                             f"{list(tasks)}; a single-task baseline uses task_weighting=equal")  # fmt: skip
    if (kind == MULTITASK) != (cfg.get("task_weighting") is not None):
        raise ValueError(
            f"dataset {name('dataset')!r} is multi-task: choose task_weighting=<{'|'.join(options('task_weighting'))}>"
            if kind == MULTITASK
            else f"task_weighting applies to multi-task datasets only; drop it for {kind} dataset {name('dataset')!r}"
        )


def check_multitask(dataset: str, dataset_class: type, chosen: dict[str, tuple[str, object]]) -> None:
    """Raise `ValueError` if the loss or the weighting serves none of a multi-task dataset's sub-task kinds."""
    sub = tuple(getattr(dataset_class, "subtask_kinds", ()))
    for group in ("loss", "weighting"):
        option, component = chosen[group]
        if not set(kinds_of(component)) & set(sub):
            valid = [n for n in options(group) if set(kinds_of(target_of(CONFIG_DIR, group, n))) & set(sub)]
            raise ValueError(f"{group} {option!r} serves none of the sub-task kinds of {dataset!r} "
                             f"({', '.join(sub)}); {group} options that do: {', '.join(valid)}")  # fmt: skip


def _is_multitask_model(name: str) -> bool:
    return issubclass(target_of(CONFIG_DIR, "model", name), MultiTaskModel)


def _option_of(group: str, node: DictConfig) -> str:
    """The option of `group` whose YAML `node` was composed from (its class name if that is ambiguous).

    Options sharing a `_target_` (the UCI tables, focal_l1/focal_mse) are told apart by their own values.
    """
    matches = []
    for path in sorted((CONFIG_DIR / group).glob("*.yaml")):
        yaml = load_yaml(path)
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
    built: dict[str, Any] = {}
    for group in [g for g in COMPONENT_GROUPS if g != "model"]:
        built[group] = _build(cfg, group, cache, choices)
    if cfg.get("task_weighting") is not None:
        built["task_weighting"] = _build(cfg, "task_weighting", cache, choices)
    shapes = built["dataset"].shapes()
    widths: dict[str, Any] = {}
    if shapes is None:
        data = load_data(cfg, built["dataset"])
        shapes = (tuple(data.input_shape), data.task.output_width)
        if isinstance(data.task, MultiTask):  # one head per sub-task
            widths = {"head_widths": data.task.head_widths}
    seed_everything(seed)  # the model's initialisation depends on the seed alone
    shape = {"input_shape": list(shapes[0]), "num_classes": shapes[1], **widths}
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
    cache: dict[tuple[str, str], Any] | None,
    choices: Mapping[str, Any] | None,
    **extra: Any,
) -> Any:
    """Instantiate `cfg[group]` (once per identical node in `cache`); `ValueError` naming the group.

    `cache=None` (a run's own components): nothing is shared or kept.
    """
    key = None
    if cache is not None:  # preflight over a grid: an identical node built and checked already is reused
        key = (group, OmegaConf.to_yaml(cfg[group], resolve=True) + repr(sorted(extra.items())))
        if key in cache:
            return cache[key]
    try:
        values = OmegaConf.to_container(cfg[group], resolve=True)
        check_parameter_types(group, values if isinstance(values, dict) else {})
        obj = (
            _instantiate(values, extra)
            if _plain(values)
            else instantiate(cfg[group], _convert_="all", **extra)
        )
    except Exception as exc:  # ValueError, or a constructor's TypeError, ImportError, ...: their own words
        name = (choices or {}).get(group)
        raise ValueError(f"invalid {group}{f' {name!r}' if name else ''}: {_one_line(exc)}") from exc
    if cache is not None:
        cache[key] = obj  # type: ignore[index]
    return obj


def _plain(values: Any) -> bool:
    """Whether a resolved node is `_target_` plus plain parameters (no nested `_target_`, no Hydra flags)."""

    def nested_target(v: Any) -> bool:
        if isinstance(v, dict):
            return "_target_" in v or any(nested_target(x) for x in v.values())
        return isinstance(v, list) and any(nested_target(x) for x in v)

    return (
        isinstance(values, dict)
        and isinstance(values.get("_target_"), str)
        and not any(str(k).startswith("_") and k != "_target_" for k in values)
        and not any(nested_target(v) for v in values.values())
    )


def _instantiate(values: dict[str, Any], extra: Mapping[str, Any]) -> Any:
    """`instantiate(node, _convert_="all", **extra)` for a plain node: its class called with plain containers.

    What Hydra's `instantiate` does for such a node, without re-creating and merging an OmegaConf
    node per call (a stacked group builds every member's components).
    """
    params = {k: v for k, v in values.items() if k != "_target_"}
    return get_object(values["_target_"])(**{**params, **extra})


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


@dataclass
class Cell:
    """A claimed cell on its way through the pipeline (`_claim` -> `_prepare` -> train -> `_finish`)."""

    cfg: DictConfig
    record: RunRecord
    title: str
    store: Store
    components: Components
    sink: Any
    env: dict[str, Any]
    ckpt: Path | None
    aug_state: dict[str, Any]  # torch's RNG state right after the model was built (its augmentation's)
    data: DataSpec | None = None
    meta: dict[str, Any] | None = None
    evaluator: Evaluator | None = None
    multitask: MultiTaskObjective | None = None  # multi-task data: per-sub-task losses + task weighting


def run_cell(cfg: DictConfig, choices: dict[str, Any]) -> str:
    """Train and evaluate one cell; write its record. Returns its status (or `skipped`).

    While `SESSION.pending` is a list (`lossbench run -m` with the in-process launcher), a cell with
    `trainer.stack=auto` is only queued (status `deferred`); `run_pending` then trains the queued
    cells, in stacked groups where they share everything but seed, loss, weighting, lr and weight decay.
    """
    if SESSION.pending is not None and cfg.trainer.stack == "auto":
        SESSION.pending.append((cfg, choices))
        return "deferred"
    cell = _claim(cfg, choices)
    if cell is None:
        return _outcome("skipped")
    try:
        _prepare(cell)
    except Exception as exc:
        return _finish(cell, exc)
    return _finish(cell, _train_alone(cell))


def stack_key(cfg: DictConfig) -> str:
    """Cells with equal keys can train as one stacked model.

    All must be equal but seed, loss, weighting and the trainer's `lr` and `weight_decay` (each member
    steps with its own: `train/stacked.py`).
    """
    config: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    kept = {k: v for k, v in config.items() if k not in ("seed", "loss", "weighting")}
    kept["trainer"] = {k: v for k, v in config["trainer"].items() if k not in ("lr", "weight_decay")}
    return run_id_of(kept)


def _objective_key(cfg: DictConfig) -> str:
    """Equal for cells of one stacked group whose losses and weightings are equal (`Member.objective`)."""
    return json.dumps({g: OmegaConf.to_container(cfg[g], resolve=True) for g in ("loss", "weighting")},
                      sort_keys=True, default=str)  # fmt: skip


def run_pending() -> None:
    """Train the queued cells: those sharing a `stack_key` as stacked groups, the rest alone."""
    pending, SESSION.pending = SESSION.pending or [], None
    groups: dict[str, list[tuple[DictConfig, dict[str, Any]]]] = {}
    for cfg, choices in pending:
        groups.setdefault(stack_key(cfg), []).append((cfg, choices))
    for cells in groups.values():
        with stop_on_escape(str(cells[0][0].store.url)):
            if len(cells) == 1:
                run_cell(*cells[0])
            else:
                run_group(cells)


def run_group(cells: list[tuple[DictConfig, dict[str, Any]]]) -> list[str]:
    """Claim, build and train `cells` as one stacked group (`train/stacked.py`); each writes its record.

    Cells already completed (or running elsewhere) are left out; a cell that fails to build is
    recorded as failed; one whose model or recipes cannot be stacked trains alone. Returns the
    statuses of the stacked members.
    """
    claimed = []
    for cfg, choices in cells:
        cell = _claim(cfg, choices)
        if cell is None:
            _outcome("skipped")
            continue
        try:
            _prepare(cell)
        except Exception as exc:
            _finish(cell, exc)
            continue
        c = cell.components
        if (
            cell.multitask is not None
            or unstackable(c.model, c.loss, c.weighting, c.stage2, c.trainer) is not None
        ):
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
        Member(c.components.model, c.components.loss, c.components.weighting, c.components.sampler,
               c.components.seed, c.aug_state, _heartbeat(c), c.components.trainer.lr,
               c.components.trainer.weight_decay, _objective_key(c.cfg))
        for c in claimed
    ]  # fmt: skip
    log.info("training %d runs stacked: %s", len(members), "; ".join(c.title for c in claimed))
    try:
        results: list[FitResult | BaseException] = fit_stacked(
            members,
            claimed[0].data,
            trainer,
            ckpt,
            evaluator=claimed[0].evaluator,  # type: ignore[arg-type]
        )
    except Exception as exc:  # the whole group failed: every member records it
        results = [exc] * len(claimed)
    statuses = [_finish(c, r) for c, r in zip(claimed, results, strict=True)]
    if ckpt is not None and all(s in ("completed", "diverged") for s in statuses):
        remove_checkpoints(ckpt)
    return statuses


def _claim(cfg: DictConfig, choices: dict[str, Any]) -> Cell | None:
    """Build and check the cell's components and claim its run in the store; None if it is skipped."""
    components = build_components(cfg, choices=choices)
    aug_state = rng_state()  # right after the seeded model: what this run's augmentation draws from
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
        return None
    sink = instantiate(cfg.logger) if cfg.get("logger") else None
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
    return Cell(cfg, record, title, store, components, sink, env, ckpt, aug_state)


def _prepare(cell: Cell) -> None:
    """Load the data, fit the components to the training statistics, build the evaluator."""
    c = cell.components
    cell.data = load_data(cell.cfg, c.dataset)
    cell.meta = dict(cell.data.meta)
    if isinstance(
        cell.data.task, MultiTask
    ):  # per-sub-task copies of loss and weighting, fitted on their targets
        prepare(cell.data.task, cell.data.train.y, c.sampler, c.stage2)
        cell.multitask = MultiTaskObjective(
            cell.data.task, c.loss, c.weighting, c.task_weighting, cell.data.train.y
        )
        cell.meta["subtask_recipes"] = cell.multitask.describe()
    else:
        prepare(cell.data.task, cell.data.train.y, c.loss, c.weighting, c.sampler, c.stage2)
    cell.evaluator = Evaluator.of(cell.data, c.trainer, resolve_device(c.trainer.device))
    if cell.sink is not None:
        cell.sink.start(cell.record.run_id, cell.record.config, cell.record.labels)


def _heartbeat(cell: Cell) -> Any:
    def on_epoch_end(row: dict[str, Any]) -> None:
        cell.store.heartbeat(cell.record.run_id)  # raises ClaimLost if another process took the run over
        if cell.sink is not None:
            cell.sink.log(row)

    return on_epoch_end


def _train_alone(cell: Cell) -> FitResult | BaseException:
    c = cell.components
    try:
        return fit(
            c.model, c.loss, c.weighting, c.sampler, cell.data, c.trainer,  # type: ignore[arg-type]
            seed=c.seed, on_epoch_end=_heartbeat(cell), checkpoint_dir=cell.ckpt, evaluator=cell.evaluator,
            multitask=cell.multitask,
        )  # fmt: skip
    except Exception as exc:
        return exc


def _finish(cell: Cell, result: FitResult | BaseException) -> str:
    """Run stage 2 on a trained cell and write its record; `result` is stage 1's or what stopped it."""
    status, metrics, rows, error = "failed", None, [], None
    title, env, c = cell.title, cell.env, cell.components
    try:
        if isinstance(result, BaseException):
            raise result
        env["execution"] = result.execution
        if result.resumed_from is not None:
            env["resumed_from_epoch"] = result.resumed_from
            log.info("resumed %s from its checkpoint after epoch %d", title, result.resumed_from)
        # stage 2 (cRT, tau-norm, ...): changes the model in place; the metrics become the final model's
        result = c.stage2.run(c.model, cell.data, c.trainer, c.seed, stage1=result, evaluator=cell.evaluator)
        status, metrics, rows = "completed", result.metrics, result.history
        shown = "test/" + cell.evaluator.select_metric.split("/", 1)[1]  # type: ignore[union-attr]
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
    with stop_on_escape(str(cfg.store.url)):
        return run_cell(cfg, dict(HydraConfig.get().runtime.choices))


@contextmanager
def stop_on_escape(store_url: str) -> Iterator[None]:
    """Turn anything that escapes a cell's own handling into `Stop` (one line, the grid's summary, exit != 0).

    Used around every way cells are trained: the Hydra app (`main`) and the stacked groups
    (`run_pending`), so a store that cannot be written ends the grid the same way from both.
    """
    try:
        yield
    except StoreError as exc:
        raise Stop(str(exc), code=2) from exc
    except (sa.exc.OperationalError, OSError) as exc:
        text = _one_line(getattr(exc, "orig", None) or exc)
        raise Stop(f"cannot write to the store {store_url} ({text}); free disk space or fix its "
                   "permissions, then rerun the same command to resume") from exc  # fmt: skip
    except ValueError as exc:
        raise Stop(_one_line(exc), code=2) from exc
    except Exception as exc:  # noqa: BLE001
        raise Stop(f"{type(exc).__name__}: {_one_line(exc)}") from exc


if __name__ == "__main__":
    main()
