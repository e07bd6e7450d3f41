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
from dataclasses import dataclass, field
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
    config: DictConfig = field(repr=False)
    choices: dict[str, Any] = field(repr=False)
    run_id: str = ""


class Planner:
    """Composes the cells of `study` for the store at `url` (one Hydra compose per method x dataset)."""

    def __init__(self, study: Study, url: str) -> None:
        self.study, self.url = study, url
        self._bases: dict[tuple[str, str], tuple[DictConfig, dict[str, Any], list[str]]] = {}

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

    def cell(
        self, method: Method, dataset: str, phase: str, trial: int, seed: int, params: Mapping[str, Any]
    ) -> Cell:
        """One cell with its resolved config and run id."""
        from lossbench.store.record import run_id_of

        base, choices, overrides = self.base(method, dataset)
        cfg = copy.deepcopy(base)
        for key, value in params.items():
            OmegaConf.update(cfg, key, value, merge=False)
        cfg.seed = seed
        extra = [f"{k}={v}" for k, v in params.items()] + [f"seed={seed}"]
        cell = Cell(
            method.name, dataset, phase, trial, seed, dict(params), [*overrides, *extra], cfg, choices
        )
        cell.run_id = run_id_of(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
        return cell

    def check(self, cell: Cell) -> None:
        """Instantiate the cell's components and dataset recipe (cheap: no data is read) without training.

        Raises `ValueError` naming the cell, so a bad search range or missing data fails before any run.
        """
        from lossbench.run import build_components

        try:
            components = build_components(cell.config)
            del components
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
