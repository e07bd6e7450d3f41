"""A study config (`configs/study/NAME.yaml`): methods, datasets, seeds, search spaces, trials, selection.

Parsing and validation only (plain YAML, no Hydra, no torch), so `--dry-run` and the tests are cheap.
Hyperparameters are drawn here: trial `t` of method `m` on dataset `d` is a pure function of
(`study_seed`, `m`, `d`, `t`), so rerunning a study regenerates the same trials (and so the same run ids).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

KINDS = ("log_uniform", "uniform", "int_uniform", "choice")
COMPONENTS = ("loss", "weighting", "sampler", "stage2")
DEFAULT_COMPONENTS = {"loss": "ce", "weighting": "none", "sampler": "instance", "stage2": "none"}


@dataclass(frozen=True)
class Distribution:
    """One hyperparameter's search distribution.

    Kinds: ``log_uniform: [lo, hi]`` (lo > 0), ``uniform: [lo, hi]``, ``int_uniform: [lo, hi]``
    (both ends included) and ``choice: [a, b, ...]``.
    """

    kind: str
    args: tuple[Any, ...]

    @classmethod
    def parse(cls, key: str, value: Any) -> Distribution:
        """From the YAML form `{kind: [args]}`; raises `ValueError` naming `key` when malformed."""
        if not isinstance(value, Mapping) or len(value) != 1:
            raise ValueError(
                f"search space {key!r}: expected one of {{{', '.join(KINDS)}}}: [...], got {value!r}"
            )
        kind, args = next(iter(value.items()))
        if kind not in KINDS or not isinstance(args, list | tuple) or not args:
            raise ValueError(
                f"search space {key!r}: kind must be one of {', '.join(KINDS)} with a list, got {value!r}"
            )
        if kind != "choice":
            if len(args) != 2 or not all(isinstance(a, int | float) for a in args) or args[0] > args[1]:
                raise ValueError(f"search space {key!r}: {kind} needs [lo, hi] with lo <= hi, got {args!r}")
            if kind == "log_uniform" and args[0] <= 0:
                raise ValueError(f"search space {key!r}: log_uniform needs lo > 0, got {args!r}")
        return cls(kind, tuple(args))

    def draw(self, rng: np.random.Generator) -> Any:
        """One value (floats rounded to 4 significant digits, so run ids and tables stay readable)."""
        lo, hi = (self.args + (None,))[:2]
        if self.kind == "choice":
            value = self.args[int(rng.integers(len(self.args)))]
            return value.item() if hasattr(value, "item") else value
        if self.kind == "int_uniform":
            return int(rng.integers(int(lo), int(hi) + 1))
        x = (
            math.exp(rng.uniform(math.log(lo), math.log(hi)))
            if self.kind == "log_uniform"
            else rng.uniform(lo, hi)
        )
        return float(f"{x:.4g}")


@dataclass(frozen=True)
class Method:
    """One method: a loss x weighting (x sampler x stage 2) combination and its own search space."""

    name: str
    components: dict[str, str]  # group -> option, e.g. {"loss": "focal", "weighting": "none", ...}
    space: dict[str, Distribution]  # dotted config key -> distribution (the study's common space included)
    overrides: tuple[str, ...] = ()  # fixed Hydra overrides of this method (e.g. `stage2.tau=auto`)

    def choice_overrides(self) -> list[str]:
        """`loss=focal weighting=none ...` for Hydra."""
        return [f"{group}={option}" for group, option in self.components.items()]


@dataclass(frozen=True)
class Study:
    """A parsed study config. See `configs/study/default.yaml` for the documented fields."""

    name: str
    datasets: tuple[str, ...]
    methods: tuple[Method, ...]
    seeds: tuple[int, ...]
    trials: int
    trial_seed: int
    study_seed: int
    model: str
    trainer: str
    overrides: tuple[str, ...]
    select_metric: str  # validation metric the trials are chosen by, e.g. `val/balanced_acc`
    select_epoch: str  # `best` (best-validation epoch of each run) or `last`
    report_metric: str  # test metric of the leaderboard, e.g. `test/balanced_acc`
    baseline: str
    threads: int | None = None  # torch intra-op threads of the study process (None: torch's default)
    description: str = ""
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def select_column(self) -> str:
        """The column the selection reads: `selected/val/balanced_acc` (see `select.add_selected`)."""
        return f"selected/{self.select_metric}"

    @property
    def report_column(self) -> str:
        """The column the leaderboard reads, at the same epoch as the selection: `selected/test/balanced_acc`."""
        return f"selected/{self.report_metric}"

    def draw(self, method: Method, dataset: str, trial: int) -> dict[str, Any]:
        """Hyperparameters of `trial` of `method` on `dataset`: `{}` for trial 0 (the configs' defaults).

        Trial 0 runs the method as its YAML files set it (as DomainBed's hparams seed 0 is the default
        hyperparameters); trials 1.. draw every key of the space independently from a generator seeded
        by (study seed, method, dataset, trial), in sorted key order.
        """
        if trial == 0 or not method.space:
            return {}
        key = [self.study_seed, _crc(method.name), _crc(dataset), trial]
        rng = np.random.default_rng(key)
        return {k: method.space[k].draw(rng) for k in sorted(method.space)}

    def count(self) -> dict[str, int]:
        """Runs of the two phases: tuning trials and the chosen configurations' seeds."""
        cells = len(self.methods) * len(self.datasets)
        return {"trials": cells * self.trials, "final": cells * len(self.seeds), "cells": cells}


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


def study_dir() -> Path:
    """`configs/study/` of the config directory in use."""
    from lossbench.config import CONFIG_DIR

    return CONFIG_DIR / "study"


def study_names() -> list[str]:
    """The declared studies (`configs/study/*.yaml`)."""
    return sorted(p.stem for p in study_dir().glob("*.yaml"))


def load_study(name: str) -> Study:
    """Read and validate `configs/study/NAME.yaml` (raises `ValueError` with the fix)."""
    path = study_dir() / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(
            f"unknown study {name!r}; valid: {', '.join(study_names()) or 'none'} (configs/study/)"
        )
    return parse_study(name, yaml.safe_load(path.read_text()) or {}, str(path))


def _list(raw: Mapping[str, Any], key: str, kind: type, default: Any = None) -> tuple[Any, ...]:
    value = raw.get(key, default)
    if value is None or not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise ValueError(f"study field {key!r} must be a list of {kind.__name__}, got {value!r}")
    return tuple(value)


def parse_study(name: str, raw: Mapping[str, Any], source: str = "") -> Study:
    """Build a `Study` from the YAML mapping; every problem raises one `ValueError`."""
    known = {"description", "datasets", "methods", "seeds", "trials", "trial_seed", "study_seed", "model",
             "trainer", "overrides", "selection", "report_metric", "baseline", "space", "threads"}  # fmt: skip
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(
            f"study {name!r}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
        )
    common = {k: Distribution.parse(k, v) for k, v in (raw.get("space") or {}).items()}
    methods = []
    for mname, body in (raw.get("methods") or {}).items():
        body = body or {}
        bad = sorted(set(body) - {*COMPONENTS, "space", "overrides"})
        if bad:
            raise ValueError(f"study {name!r}: method {mname!r} has unknown field(s) {', '.join(bad)}")
        components = {g: str(body.get(g, DEFAULT_COMPONENTS[g])) for g in COMPONENTS}
        own = {k: Distribution.parse(k, v) for k, v in (body.get("space") or {}).items()}
        overrides = _list(body, "overrides", str, [])
        methods.append(Method(str(mname), components, {**common, **own}, overrides))
    if not methods:
        raise ValueError(f"study {name!r} declares no methods")
    selection = raw.get("selection") or {}
    select_metric = str(selection.get("metric", "val/balanced_acc"))
    select_epoch = str(selection.get("epoch", "best"))
    if not select_metric.startswith("val/"):
        raise ValueError(
            f"study {name!r}: selection.metric must be a validation metric (val/...), got {select_metric!r}"
        )
    if select_epoch not in ("best", "last"):
        raise ValueError(f"study {name!r}: selection.epoch must be best or last, got {select_epoch!r}")
    report_metric = str(raw.get("report_metric", "test/" + select_metric.split("/", 1)[1]))
    if not report_metric.startswith("test/"):
        raise ValueError(
            f"study {name!r}: report_metric must be a test metric (test/...), got {report_metric!r}"
        )
    trials = raw.get("trials", 1)
    if not isinstance(trials, int) or trials < 1:
        raise ValueError(f"study {name!r}: trials must be an integer >= 1, got {trials!r}")
    seeds = _list(raw, "seeds", int)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"study {name!r}: seeds must be distinct integers, got {list(seeds)}")
    trial_seed = raw.get("trial_seed", 100)
    if trial_seed in seeds:
        raise ValueError(
            f"study {name!r}: trial_seed {trial_seed} is one of the seeds; the reported seeds must be fresh runs"
        )
    baseline = str(raw.get("baseline", "ce"))
    names = [m.name for m in methods]
    if baseline not in names:
        raise ValueError(
            f"study {name!r}: baseline {baseline!r} is not a method; methods: {', '.join(names)}"
        )
    datasets = _list(raw, "datasets", str)
    if not datasets or len(set(datasets)) != len(datasets):
        raise ValueError(f"study {name!r}: datasets must be a non-empty list of distinct options")
    threads = raw.get("threads")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"study {name!r}: threads must be an integer >= 1 or null, got {threads!r}")
    return Study(
        name=name,
        datasets=datasets,
        methods=tuple(methods),
        seeds=seeds,
        trials=trials,
        trial_seed=int(trial_seed),
        study_seed=int(raw.get("study_seed", 0)),
        model=str(raw.get("model", "mlp")),
        trainer=str(raw.get("trainer", "default")),
        overrides=_list(raw, "overrides", str, []),
        select_metric=select_metric,
        select_epoch=select_epoch,
        report_metric=report_metric,
        baseline=baseline,
        threads=threads,
        description=str(raw.get("description", "")),
        source=source,
    )


def check_options(study: Study, valid: Mapping[str, Sequence[str]]) -> None:
    """Raise `ValueError` for a dataset, model, trainer or component that is not a config option."""
    wanted = [("dataset", d) for d in study.datasets] + [("model", study.model), ("trainer", study.trainer)]
    wanted += [(g, o) for m in study.methods for g, o in m.components.items()]
    for group, option in wanted:
        if option not in valid[group]:
            raise ValueError(
                f"study {study.name!r}: unknown {group} {option!r}; valid options: {', '.join(valid[group])}"
            )
