"""Reproduction targets: published numbers joined against our runs (ours beside theirs, with the delta).

A targets file is YAML: top-level `paper`, `table`, `metric`, `selection`, `unit` (`percent` or
`fraction`) and `setting` are defaults that each entry of `targets` may override; an entry names the
method (`{loss: ldam, weighting: drw}`) and the published `value`. `setting`/`method` keys are run
labels (`dataset`, `loss`, ...) or dotted keys of the resolved config (`dataset.imbalance_ratio`).
The bundled `targets/ldam_drw.yaml` holds Cao et al. (2019), Table 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from lossbench.report.tables import PERCENT, SELECTIONS, metric_column, t_halfwidth

BUNDLED = Path(__file__).parent / "targets"
FIELDS = ("paper", "table", "metric", "selection", "unit")


@dataclass(frozen=True)
class Target:
    """One published number and where it comes from."""

    paper: str
    table: str
    name: str
    metric: str
    selection: str
    unit: str
    value: float
    match: dict[str, Any]


def _number(value: Any, file: Path, i: int) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{file}: target {i}: value must be a number, got {value!r}") from None


def read_targets(path: str | Path) -> list[Target]:
    """Parse a targets YAML (a path, or the name of a bundled file such as `ldam_drw`)."""
    file = Path(path)
    if not file.exists() and (BUNDLED / f"{path}.yaml").exists():
        file = BUNDLED / f"{path}.yaml"
    if not file.exists():
        bundled = ", ".join(sorted(p.stem for p in BUNDLED.glob("*.yaml")))
        raise ValueError(f"no targets file {path!r} (bundled: {bundled})")
    try:
        doc = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ValueError(
            f"{file} is not valid YAML{at} ({getattr(exc, 'problem', None) or exc}); fix the file"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read targets file {file}: {exc}") from exc
    entries = doc.get("targets") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("method", {}), dict) for e in entries
    ):
        raise ValueError(
            f"{file} is not a targets file: it needs a `targets:` list of mappings with method, metric, "
            f"selection and value (see the bundled ldam_drw.yaml)"
        )
    out = []
    for i, entry in enumerate(entries):
        merged = {**{k: doc.get(k) for k in FIELDS}, **entry}
        missing = [k for k in ("metric", "selection", "value") if merged.get(k) is None]
        if missing or "method" not in entry:
            raise ValueError(f"{file}: target {i} lacks {', '.join(missing or ['method'])}")
        if merged["selection"] not in SELECTIONS:
            raise ValueError(f"{file}: target {i}: selection must be one of {', '.join(SELECTIONS)}")
        unit = merged.get("unit") or "fraction"
        if unit not in ("percent", "fraction"):
            raise ValueError(f"{file}: target {i}: unit must be percent or fraction, got {unit!r}")
        match = {**(entry.get("setting") or doc.get("setting") or {}), **entry["method"]}
        out.append(Target(str(merged.get("paper") or ""), str(merged.get("table") or ""),
                          str(entry.get("name") or "/".join(map(str, entry["method"].values()))),
                          merged["metric"], merged["selection"], unit, _number(merged["value"], file, i), match))  # fmt: skip
    return out


def config_keys(targets: list[Target]) -> list[str]:
    """Dotted config keys the targets match on (to pass to `load_runs(config_keys=...)`)."""
    return sorted({k for t in targets for k in t.match if "." in k})


def _equal(series: pd.Series, value: Any) -> pd.Series:
    numeric = pd.to_numeric(series, errors="coerce")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return numeric == float(value)
    return series.astype(str) == str(value)


def compare(runs: pd.DataFrame, targets: list[Target]) -> pd.DataFrame:
    """Ours beside theirs: mean/std/n over the matching runs' seeds, the delta and the CI check.

    `inside_ci` is `yes` when the published value lies in our mean's 95 % t-interval (`ci95` is its half-width), `no` when it
    does not, and `n/a` with fewer than two seeds (or no matching run, then `ours` is empty).
    """
    rows = []
    for t in targets:
        mask = pd.Series(True, index=runs.index)
        for key, value in t.match.items():
            mask &= _equal(runs[key], value) if key in runs.columns else False
        column = metric_column(t.metric, t.selection)
        scale = 100.0 if t.unit == "percent" and t.metric.rsplit("/", 1)[-1] in PERCENT else 1.0
        values = runs.loc[mask, column].dropna() * scale if column in runs.columns else pd.Series(dtype=float)
        n = len(values)
        mean, std = (values.mean(), values.std()) if n else (np.nan, np.nan)
        half = float(t_halfwidth(pd.Series([std]), pd.Series([n])).iloc[0]) if n > 1 else np.nan
        inside = "n/a" if np.isnan(half) else ("yes" if abs(t.value - mean) <= half else "no")
        rows.append({
            "method": t.name,
            "setting": ", ".join(f"{k}={v}" for k, v in t.match.items()),
            "metric": f"{t.selection}/{t.metric}", "published": t.value, "ours": mean, "std": std, "n": n,
            "ci95": half, "delta": mean - t.value, "inside_ci": inside,
        })  # fmt: skip
    return pd.DataFrame(rows)


def sources(targets: list[Target]) -> str:
    """The distinct `paper, table` references of `targets`, for a caption."""
    return "; ".join(dict.fromkeys(f"{t.paper}, {t.table}".strip(", ") for t in targets))
