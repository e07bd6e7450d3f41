"""One record per run, carrying its own provenance."""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from lossbench.groups import RUN_LABELS
from lossbench.identity import check_seed, run_id_of, variant_of

# `interrupted`: the process was stopped (Ctrl-C, SIGTERM) or could not go on (e.g. the disk filled up)
# while it held the run; like `failed`, the next invocation of its grid runs it again.
STATUSES = ("running", "completed", "failed", "diverged", "interrupted")


def utcnow() -> datetime:
    """Timezone-aware now (UTC)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class RunRecord:
    """What the store holds about one run when it starts (results are added by `Store.finish`).

    `labels` are the chosen config options (`hydra.runtime.choices`), e.g. `{"loss": "focal"}`;
    `variant` identifies the config up to its seed, so a report never pools different settings silently.
    """

    run_id: str
    variant: str
    labels: dict[str, str | None]
    seed: int
    config: dict[str, Any]
    environment: dict[str, Any] = field(default_factory=dict)
    started_at: datetime = field(default_factory=utcnow)

    @classmethod
    def start(cls, config: dict[str, Any], choices: dict[str, Any]) -> RunRecord:
        """A record for a run of the resolved `config` with the chosen options `choices`."""
        labels = {k: (str(choices[k]) if choices.get(k) is not None else None) for k in RUN_LABELS}
        return cls(
            run_id=run_id_of(config),
            variant=variant_of(config),
            labels=labels,
            seed=check_seed(config.get("seed", 0)),
            config=config,
            environment=environment(),
        )


@functools.cache
def _static_environment() -> dict[str, Any]:
    versions = {}
    for pkg in ("torch", "torchvision", "numpy", "scikit-learn", "hydra-core", "lossbench"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    sha, dirty = _git_state()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "packages": versions,
        "git_sha": sha,
        "git_dirty": dirty,
    }


def environment() -> dict[str, Any]:
    """Package versions, host, git commit and dirty flag, process id (device is added by the run)."""
    return {**_static_environment(), "pid": os.getpid()}


def _git_state() -> tuple[str | None, bool | None]:
    root = Path(__file__).resolve().parents[3]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if sha.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return sha.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None
