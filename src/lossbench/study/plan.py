"""The cells of a study: every tuning trial and every final seed run, each an ordinary run config.

A cell's config is composed exactly as `lossbench run` composes it (Hydra, same defaults), so its run
id is the one `lossbench run <cell.overrides>` would get: resuming a study, re-running one cell by
hand and sharing runs with an ordinary grid all go through the store's run ids. Hydra composes each
method x dataset once; the trial values and the seed are then set on a copy (`OmegaConf.update`),
which gives the same resolved config as passing them as overrides (tested) at a fraction of the cost.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from lossbench.study.spec import Method, Study

_ABSENT = object()


@dataclass
class Cell:
    """One run of the study.

    `phase` is ``"trial"`` (tuning: `trial` index, the study's `trial_seed`) or ``"final"`` (the chosen
    trial's hyperparameters with one of the study's seeds).
    """

    method: str
    dataset: str
    phase: str
    trial: int
    seed: int
    params: dict[str, Any]
    overrides: list[str]  # `lossbench run` overrides that reproduce this cell
    run_id: str = ""


def _raw(cfg: DictConfig, key: str) -> Any:
    """The value at dotted `key` as written (an interpolation `${...}` unresolved)."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return node._get_node(leaf)._value()  # type: ignore[union-attr]


class Planner:
    """Composes the cells of `study` for the store at `url` (one Hydra compose per method x dataset)."""

    def __init__(self, study: Study, url: str) -> None:
        self.study, self.url = study, url
        self._bases: dict[tuple[str, str], tuple[DictConfig, dict[str, Any], list[str]]] = {}
        self._checked: dict[tuple[str, str], Any] = {}  # components built by `check`, per identical node

    def base_overrides(self, method: Method, dataset: str) -> list[str]:
        """The Hydra overrides shared by every cell of `method` on `dataset`."""
        s = self.study
        return [f"dataset={dataset}", f"model={s.model}", f"trainer={s.trainer}", *method.choice_overrides(),
                *s.overrides, *method.overrides]  # fmt: skip

    def base(self, method: Method, dataset: str) -> tuple[DictConfig, dict[str, Any], list[str]]:
        """(config without the `hydra` node, Hydra's choices, overrides) of `method` on `dataset`, cached."""
        key = (method.name, dataset)
        if key not in self._bases:
            from lossbench.config import compose_with_hydra

            overrides = self.base_overrides(method, dataset)
            cfg = compose_with_hydra([*overrides, f"store.url={self.url}"])
            choices = dict(OmegaConf.to_container(cfg.hydra.runtime.choices))  # type: ignore[arg-type]
            with open_dict(cfg):
                del cfg["hydra"]
            for name in method.space:
                if OmegaConf.select(cfg, name, default=_ABSENT) is _ABSENT:
                    raise ValueError(
                        f"study {self.study.name!r}: method {method.name!r} searches {name!r}, which its "
                        f"config ({' '.join(overrides)}) does not have"
                    )
            self._bases[key] = (cfg, choices, overrides)
        return self._bases[key]

    @contextmanager
    def _applied(self, cell: Cell) -> Iterator[tuple[DictConfig, dict[str, Any]]]:
        """The cell's method x dataset config with its values and seed set, restored on exit.

        Setting and restoring in place is what keeps planning 10,000 cells cheap (a deep copy of a
        composed config costs more than resolving it).
        """
        method = next(m for m in self.study.methods if m.name == cell.method)
        base, choices, _ = self.base(method, cell.dataset)
        values = {**cell.params, "seed": cell.seed}
        saved = {key: _raw(base, key) for key in values}  # interpolations stay interpolations
        try:
            for key, value in values.items():
                OmegaConf.update(base, key, value, merge=False)
            yield base, choices
        finally:
            for key, value in saved.items():
                OmegaConf.update(base, key, value, merge=False)

    def materialize(self, cell: Cell) -> tuple[DictConfig, dict[str, Any]]:
        """A config of its own (and Hydra's choices) for running `cell`."""
        with self._applied(cell) as (cfg, choices):
            return copy.deepcopy(cfg), choices

    def cell(
        self, method: Method, dataset: str, phase: str, trial: int, seed: int, params: Mapping[str, Any]
    ) -> Cell:
        """One cell with its run id (its config is built again by `materialize` when it runs)."""
        from lossbench.store.record import run_id_of

        overrides = self.base(method, dataset)[2]
        extra = [f"{k}={v}" for k, v in params.items()] + [f"seed={seed}"]
        cell = Cell(method.name, dataset, phase, trial, seed, dict(params), [*overrides, *extra])
        with self._applied(cell) as (cfg, _):
            cell.run_id = run_id_of(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
        return cell

    def check(self, cell: Cell) -> None:
        """Instantiate the cell's components and dataset recipe (cheap: no data is read) without training.

        Raises `ValueError` naming the cell, so a bad search range or missing data fails before any run.
        """
        from lossbench.run import build_components

        try:
            with self._applied(cell) as (cfg, choices):
                build_components(cfg, self._checked, choices=choices)
        except Exception as exc:
            cause = exc.__cause__ or exc
            raise ValueError(
                f"study {self.study.name!r}: invalid run ({' '.join(cell.overrides)}): {cause}"
            ) from exc

    def trials(self) -> Iterator[Cell]:
        """Every tuning trial, dataset by dataset (each dataset is loaded once per process)."""
        s = self.study
        for dataset in s.datasets:
            for method in s.methods:
                for t in range(s.trials):
                    yield self.cell(method, dataset, "trial", t, s.trial_seed, s.draw(method, dataset, t))

    def finals(self, chosen: Mapping[tuple[str, str], tuple[int, Mapping[str, Any]]]) -> Iterator[Cell]:
        """The seeds of each chosen (method, dataset) -> (trial, params); pairs without a choice are skipped."""
        s = self.study
        for dataset in s.datasets:
            for method in s.methods:
                if (method.name, dataset) not in chosen:
                    continue
                trial, params = chosen[(method.name, dataset)]
                for seed in s.seeds:
                    yield self.cell(method, dataset, "final", trial, seed, params)
