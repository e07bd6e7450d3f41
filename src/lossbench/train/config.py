"""The trainer's typed schema (a misspelt `trainer.*` key fails when the config is composed)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# Field metadata of an execution setting: how a run is carried out, never what it computes. Such
# fields stay out of the run id (`lossbench.identity`), so changing one reruns nothing.
EXECUTION = {"execution": True}


@dataclass
class TrainerConfig:
    """Everything the one training loop reads.

    Fields declared with ``metadata=EXECUTION`` (device, progress, checkpoint_every, eval_batch_size)
    do not change a result, so they are not part of a run's identity.

    The learning rate follows the epoch (as in the LDAM-DRW reference): linear warm-up
    `lr * (epoch + 1) / warmup_epochs` for the first `warmup_epochs`, then `schedule`:
    ``"cosine"`` (to `lr_min` at the last epoch), ``"step"`` (`lr * lr_factors[i]` from epoch
    `lr_milestones[i]` on; factors are absolute multipliers of the base lr) or ``"constant"``.
    `grad_clip` > 0 rescales the gradient of all parameters to at most that global L2 norm before
    each step (`torch.nn.utils.clip_grad_norm_`, Ma et al. 2020's `grad_bound`); 0 leaves it alone.
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    warmup_epochs: int = 0
    schedule: str = "cosine"  # cosine | step | constant
    lr_min: float = 0.0  # the rate cosine anneals to (absolute, like CosineAnnealingLR's eta_min)
    lr_milestones: list[int] = field(default_factory=list)  # 0-based epochs where a step factor starts
    lr_factors: list[float] = field(default_factory=list)  # absolute multipliers of lr, one per milestone
    eval_every: int = 1  # evaluate val and test every N epochs (and always at the last epoch)
    # examples per evaluation forward; null: 1024 on a GPU; on CPU sized per model so a chunk's largest
    # activation fills about twice the threads' level-2 caches (fast.cpu_eval_batch; 2 cores with 1 MiB
    # each: ResNet-32 64, LeNet 256), 256 as the base of a stacked group's chunks. Speed and memory only:
    # the same metrics
    eval_batch_size: int | None = field(default=None, metadata=EXECUTION)
    # picks the best-validation epoch; null = the task's default (val/acc classification, val/mae regression)
    select_metric: str | None = None
    # many-shot: a class/bin with more training examples; null = the task's (100 classification, per dataset regression)
    many_threshold: int | None = None
    few_threshold: int | None = None  # few-shot: fewer than this many; null = the task's (20 classification)
    ece_bins: int = 15
    device: str = field(default="auto", metadata=EXECUTION)  # auto (CUDA when present) | cpu | cuda | cuda:N
    deterministic: bool = True  # torch's deterministic mode (changes no CPU number here; see train/fast.py)
    precision: str = "fp32"  # fp32 | bf16 (autocast; on CUDA tensor cores, on CPU torch's CPU autocast)
    compile: bool = field(default=False, metadata=EXECUTION)  # torch.compile the model's features
    # auto: a grid's (or study's) cells that differ in seed/loss/weighting/lr/weight_decay train as one
    # stacked model (except conv nets other than LeNet on CPU, measured slower stacked: BENCHMARKS.md) | off
    stack: str = field(default="auto", metadata=EXECUTION)
    progress: bool = field(default=True, metadata=EXECUTION)  # per-epoch progress bar (only on a terminal)
    checkpoint_every: int = field(
        default=0, metadata=EXECUTION
    )  # resumable checkpoint every N epochs (0 = off)
    grad_clip: float = 0.0  # max global gradient L2 norm per step (0 = no clipping)
    max_steps: int = 0  # optimizer steps per epoch at most (0 = the whole epoch); smoke tests of big grids

    def __post_init__(self) -> None:
        """Check values that would otherwise fail mid-training."""
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.schedule not in ("cosine", "step", "constant"):
            problems.append(f"schedule must be cosine, step or constant, got {self.schedule!r}")
        if len(self.lr_milestones) != len(self.lr_factors):
            problems.append("lr_milestones and lr_factors must have the same length")
        if self.max_steps < 0:
            problems.append(f"max_steps must be >= 0 (0 = whole epochs), got {self.max_steps}")
        if self.grad_clip < 0:
            problems.append(f"grad_clip must be >= 0 (0 = off), got {self.grad_clip}")
        if not 0 <= self.lr_min <= self.lr:
            problems.append(f"lr_min must be in [0, lr], got {self.lr_min}")
        if self.checkpoint_every < 0:
            problems.append(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if self.eval_batch_size is not None and self.eval_batch_size < 1:
            problems.append(f"eval_batch_size must be >= 1 (null: by device), got {self.eval_batch_size}")
        if self.warmup_epochs < 0 or self.eval_every < 1:
            problems.append("warmup_epochs must be >= 0 and eval_every >= 1")
        split, _, name = (self.select_metric or "val/task-default").partition("/")
        if split != "val" or not name:
            problems.append(
                f"select_metric must name a validation metric like 'val/acc', got {self.select_metric!r}"
            )
        if self.precision not in ("fp32", "bf16"):
            problems.append(f"precision must be fp32 or bf16, got {self.precision!r}")
        if self.stack not in ("auto", "off"):
            problems.append(f"stack must be auto or off, got {self.stack!r}")
        if self.nesterov and self.momentum == 0:
            problems.append("nesterov needs momentum > 0")
        if problems:
            raise ValueError("; ".join(problems))

    def eval_batch(self, device: Any) -> int:
        """`eval_batch_size`, or its default on `device` (a `torch.device`): 1024 on CUDA, 256 elsewhere.

        On a CPU with `eval_batch_size` null, one model's evaluation sizes its chunks per model instead
        (`Evaluator.of`, `fast.cpu_eval_batch`); 256 is the base of a stacked group's chunks there.
        """
        if self.eval_batch_size is not None:
            return self.eval_batch_size
        return 1024 if str(getattr(device, "type", device)).split(":")[0] == "cuda" else 256

    def lr_factor(self, epoch: int) -> float:
        """Multiplier of `lr` during 0-based `epoch`."""
        if epoch < self.warmup_epochs:
            return (epoch + 1) / self.warmup_epochs
        if self.schedule == "cosine":
            span = max(1, self.epochs - self.warmup_epochs)
            floor = self.lr_min / self.lr
            return floor + (1 - floor) * 0.5 * (1.0 + math.cos(math.pi * (epoch - self.warmup_epochs) / span))
        if self.schedule == "step":
            factor = 1.0
            for milestone, f in zip(self.lr_milestones, self.lr_factors, strict=True):
                if epoch >= milestone:
                    factor = f
            return factor
        return 1.0
