from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import DictConfig

from lossbench.config import CONFIG_DIR, compose, compose_with_hydra, options  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


def options_for(group: str, kind: str = "classification") -> list[str]:
    """The options of `group` that support task kind `kind` (datasets: of that kind)."""
    from lossbench.tasks.compatible import options_for as of_kind

    return of_kind(CONFIG_DIR, group, kind)


SMALL = ["dataset=synthetic", "dataset.n_max=40", "dataset.test_per_class=20", "dataset.val_per_class=10",
         "trainer=smoke", "store=memory"]  # fmt: skip


def small_cfg(overrides=(), store_url: str | None = None) -> tuple[DictConfig, dict]:
    """A shrunk real config (and its group choices), as `lossbench run` would compose it."""
    over = [*SMALL, *overrides]
    if store_url:
        over.append(f"store.url={store_url}")
    cfg = compose(over)
    choices = dict(compose_with_hydra(over).hydra.runtime.choices)
    return cfg, choices


def lossbench(
    *args: str, cwd: Path | None = None, check: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the real console script in a subprocess (`env` adds to the environment)."""
    exe = Path(sys.executable).with_name("lossbench")
    return subprocess.run(
        [str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=check,
        env={**os.environ, **env} if env else None,
    )  # fmt: skip


@pytest.fixture
def small():
    return small_cfg
