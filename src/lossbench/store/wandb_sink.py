"""Optional Weights & Biases sink: live curves only; tables always come from the store."""

from __future__ import annotations

from typing import Any


class WandbSink:
    """Streams each epoch's history row to a wandb run (one wandb run per lossbench run).

    Args:
        project: wandb project name.
        entity: wandb entity (team or user); None uses the default.
        mode: ``"online"``, ``"offline"`` or ``"disabled"``.
    """

    def __init__(self, project: str = "lossbench", entity: str | None = None, mode: str = "online") -> None:
        if mode not in ("online", "offline", "disabled"):
            raise ValueError(f"logger.mode must be online, offline or disabled, got {mode!r}")
        try:
            import wandb
        except ImportError as exc:
            raise ValueError("logger=wandb needs the wandb package: pip install 'lossbench[wandb]'") from exc
        self._wandb = wandb
        self.project, self.entity, self.mode = project, entity, mode
        self._run: Any = None

    def start(self, run_id: str, config: dict[str, Any], labels: dict[str, Any]) -> None:
        """Open the wandb run, named after the cell and tagged with its options."""
        name = "-".join(str(v) for k, v in labels.items() if v and k in ("dataset", "loss", "weighting"))
        self._run = self._wandb.init(
            project=self.project, entity=self.entity, mode=self.mode, config=config, name=name,
            id=run_id, resume="allow", reinit=True, tags=[str(v) for v in labels.values() if v],
        )  # fmt: skip

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
