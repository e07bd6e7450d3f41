"""Optional Weights & Biases sink: live curves only; tables always come from the store."""

from __future__ import annotations

import logging
import netrc
import os
from typing import Any

from lossbench.store.record import variant_of

log = logging.getLogger("lossbench")
MODES = ("auto", "online", "offline", "disabled")


def has_api_key() -> bool:
    """Whether a W&B API key is configured: `WANDB_API_KEY`, or a `wandb login` entry in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        hosts = netrc.netrc(os.environ.get("NETRC")).hosts
    except (OSError, netrc.NetrcParseError):
        return False
    return any("wandb" in host for host in hosts)


def resolve_mode(mode: str) -> str:
    """`auto`: `WANDB_MODE` if set, else online with an API key and offline without one (never a prompt)."""
    if mode != "auto":
        return mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if has_api_key() else "offline"


class WandbSink:
    """Streams each epoch's history row to a wandb run (one wandb run per lossbench run).

    The wandb run is named after the cell and seed, tagged `group=option` for each chosen option,
    grouped by the run's variant (its config up to the seed, so the W&B UI aggregates seeds) and
    given the dataset as `job_type`. Its id is the lossbench run id. A wandb failure is logged and
    ends the sink, never the run: the store is the source of truth.

    Args:
        project: wandb project name.
        entity: wandb entity (team or user); None uses the default.
        mode: ``"auto"`` (offline unless an API key is configured), ``"online"``, ``"offline"``
            or ``"disabled"``.
        dir: Directory under which wandb writes ``wandb/`` (offline runs: ``wandb/offline-run-*``).
        init_timeout: Seconds `wandb.init` may wait for the W&B service before the sink gives up.
    """

    def __init__(
        self,
        project: str = "lossbench",
        entity: str | None = None,
        mode: str = "auto",
        dir: str | None = None,
        init_timeout: float = 60.0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"logger.mode must be one of {', '.join(MODES)}, got {mode!r}")
        try:
            import wandb
        except ImportError as exc:
            raise ValueError("logger=wandb needs the wandb package: pip install 'lossbench[wandb]'") from exc
        self._wandb = wandb
        self.project, self.entity, self.mode, self.dir = project, entity, mode, dir
        self.init_timeout = float(init_timeout)
        self._run: Any = None

    def start(self, run_id: str, config: dict[str, Any], labels: dict[str, Any]) -> None:
        """Open the wandb run, named after the cell and tagged with its options."""
        chosen = {k: v for k, v in labels.items() if v}
        name = "-".join(str(v) for k, v in chosen.items() if k in ("dataset", "loss", "weighting"))
        if self.dir:
            os.makedirs(self.dir, exist_ok=True)
        try:
            self._run = self._wandb.init(
                project=self.project, entity=self.entity, mode=resolve_mode(self.mode), config=config,
                name=f"{name}-seed{config.get('seed', 0)}", id=run_id, resume="allow", dir=self.dir,
                group=variant_of(config), job_type=str(labels.get("dataset") or "run"),
                tags=[f"{k}={v}" for k, v in chosen.items()],
                settings=self._wandb.Settings(init_timeout=self.init_timeout, reinit="finish_previous", silent=True),
            )  # fmt: skip
        except Exception as exc:  # offline network, service start-up, ...: the run goes on without wandb
            log.warning("wandb disabled for run %s: %s: %s", run_id, type(exc).__name__, exc)
            self._run = None

    def log(self, row: dict[str, Any]) -> None:
        """Log one epoch's scalars."""
        if self._run is not None:
            self._run.log(
                {k: v for k, v in row.items() if isinstance(v, int | float)}, step=int(row["epoch"])
            )

    def finish(self, status: str, metrics: dict[str, Any]) -> None:
        """Write the final scalar metrics to the run summary and close it."""
        if self._run is None:
            return
        self._run.summary.update({k: v for k, v in metrics.items() if isinstance(v, int | float)})
        self._run.summary["status"] = status
        self._run.finish(exit_code=0 if status == "completed" else 1)
        self._run = None
