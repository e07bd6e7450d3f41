"""Per-run checkpoints: plain state dicts saved atomically, loaded with `weights_only=True`.

A checkpoint holds everything the loop needs to continue bit for bit: model, optimizer, loss and
weighting state dicts (their parameters and buffers: recipes keep state across epochs there), the
sampler's generator state, torch's global RNG states, the finished epoch, the history and the
best/oracle trackers. Only plain containers, numbers, strings and tensors, so the safe loader reads it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

FILENAME = "last.pt"


def rng_state() -> dict[str, Any]:
    """The global torch CPU (and CUDA) RNG states: dropout and on-device augmentation draw from them."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(directory: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` to `directory/last.pt` atomically (a temporary file, then `os.replace`)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILENAME
    tmp = directory / f".{FILENAME}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # a reader sees the old checkpoint or the new one, never half of one
    return path


def load_checkpoint(directory: str | Path | None) -> dict[str, Any] | None:
    """The state saved in `directory`, or None when there is none."""
    if directory is None or not (Path(directory) / FILENAME).is_file():
        return None
    return torch.load(Path(directory) / FILENAME, map_location="cpu", weights_only=True)


def remove_checkpoints(directory: str | Path | None) -> None:
    """Delete a run's checkpoint folder (once the run is completed)."""
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
