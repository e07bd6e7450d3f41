"""How a run executes: determinism, memory format, precision and compilation (not what it computes).

What `torch.use_deterministic_algorithms(True)` changes on a CPU, for the models here (MLP, LeNet,
ResNet-32/18 with BatchNorm, SGD): no number. Every CPU kernel these models use is already
deterministic at a fixed thread count (a training run with the flag on and off ends with bitwise
identical weights; `tests/test_fast.py` checks it). What the flag does cost on CPU:

* `torch.utils.deterministic.fill_uninitialized_memory`: with the flag on, every `torch.empty`
  (every activation and gradient buffer) is first filled with NaN, a debugging aid that changes no
  result of a correct kernel; it is what made deterministic ResNet-32 steps ~15-25 % slower here.
* `torch.use_deterministic_algorithms` itself imports `torch._inductor` (to set its config), about
  2.5 s of a short run's start-up.

So `trainer.deterministic=true` (the default) sets the flag through `torch._C` (no inductor import
unless `trainer.compile` is on) and turns the NaN fill off: any op with a non-deterministic
implementation still warns or takes its deterministic path (CUDA scatter/index_add, cuDNN), and a
CPU run pays nothing. Reruns on the same machine at the same thread count are bitwise identical.
On CUDA the flag also selects deterministic cuDNN kernels (and `CUBLAS_WORKSPACE_CONFIG` must be set
for cuBLAS, which `apply_determinism` does when it is unset).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16")


def apply_determinism(deterministic: bool, device: torch.device, compile: bool = False) -> dict[str, Any]:
    """Set torch's deterministic mode for a run on `device`; returns what was set (for the record)."""
    import torch.utils.deterministic

    if deterministic and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch._C._set_deterministic_algorithms(deterministic, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False  # a debugging aid; changes no result
    if compile:  # torch.compile reads inductor's own copy of the flag
        import torch._inductor.config as inductor_config

        inductor_config.deterministic = deterministic
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = not deterministic
    return {"deterministic_algorithms": deterministic, "threads": torch.get_num_threads()}


def uses_conv(model: nn.Module) -> bool:
    """Whether `model` has 2-d convolutions (then channels_last is the faster layout, CPU and GPU)."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def memory_format(model: nn.Module) -> torch.memory_format:
    """`channels_last` for conv nets, `contiguous_format` otherwise."""
    return torch.channels_last if uses_conv(model) else torch.contiguous_format


def to_format(x: torch.Tensor, fmt: torch.memory_format) -> torch.Tensor:
    """`x` in layout `fmt` when it is a batch of images (4-d), else unchanged."""
    return x.contiguous(memory_format=fmt) if x.dim() == 4 else x


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The forward pass's precision context: `fp32` does nothing; `bf16` autocasts to bfloat16.

    On CUDA, bf16 autocast runs matmuls and convolutions in bfloat16 (tensor cores) with fp32
    weights and optimizer state. On a CPU, bf16 autocast is torch's CPU autocast: it runs, and is
    faster only on CPUs with native bf16 (AMX/AVX512-BF16); elsewhere it is slower than fp32.
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def maybe_compile(model: nn.Module, enabled: bool) -> None:
    """Compile `model.features` in place with `torch.compile` when `enabled` (the head stays eager).

    The first epoch pays the compilation (tens of seconds for a ResNet); it pays off on long GPU
    runs. The state dict is unchanged (the compiled function is an instance attribute).
    """
    if enabled:
        model.features = torch.compile(model.features)  # type: ignore[method-assign]


def is_compiled(model: nn.Module) -> bool:
    """Whether `maybe_compile` compiled `model` (its `features` is then an instance attribute)."""
    return "features" in vars(model)


def inference_model(model: nn.Module, probe: torch.Tensor) -> nn.Module:
    """`model` (in eval mode) for inference, with each BatchNorm folded into the convolution before it.

    Evaluation runs a conv net with BatchNorm as inference engines do: `torch.fx`'s `fuse` traces a
    copy of the model and replaces every convolution followed only by a BatchNorm with one
    convolution whose weights and bias take the BatchNorm's running statistics and affine
    parameters (`w * gamma / sqrt(var + eps)`, `(b - mean) * gamma / sqrt(var + eps) + beta`), which
    saves the BatchNorm pass (~1.2x the images/s of ResNet-32 evaluation on the project's CPU). The
    outputs equal the unfolded model's up to float rounding (~1e-6 relative; `tests/test_models.py`
    checks every registered model). Models without BatchNorm, compiled models, models `torch.fx`
    cannot trace, and any model whose folded outputs on `probe` (a few inputs) differ from its own
    beyond that rounding are returned unchanged.
    """
    if is_compiled(model) or not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return model
    from torch.fx.experimental.optimization import fuse

    try:
        folded = fuse(model)
        folded.to(memory_format=memory_format(model))
        same = torch.allclose(folded(probe).float(), model(probe).float(), rtol=1e-3, atol=1e-4)
    except Exception:  # noqa: BLE001  # untraceable: evaluate the model as it is
        return model
    return folded if same else model


# Activations (floats) one evaluation chunk may hold in its largest layer on a CPU when its cache sizes
# cannot be read: about 8 MB.
CPU_EVAL_FLOATS = 2**21


@functools.cache
def l2_cache_bytes(root: str = "/sys/devices/system/cpu/cpu0/cache") -> int | None:
    """The level-2 cache of one core in bytes (Linux sysfs `index*/size`), or None when it cannot be read."""
    for index in sorted(Path(root).glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        if level == "2" and kind in ("Unified", "Data") and size[:-1].isdigit():
            return int(size[:-1]) * {"K": 2**10, "M": 2**20}.get(size[-1], 0) or None
    return None


def cpu_eval_floats() -> int:
    """Floats one CPU evaluation chunk may hold in its largest activation: twice the threads' level-2 caches.

    A chunk whose layers' outputs fit in about twice the level-2 caches of the cores that compute
    them keeps the next layer's input in cache. Measured on the project's 2-core CPU (1 MiB of L2 per
    core: 2**20 floats), ResNet-32 scores ~1.06x the images/s in chunks of 64 than of 128 and LeNet
    1.02-1.05x in chunks of 256 than of 512. `CPU_EVAL_FLOATS` (the fixed size this replaces, tuned
    on an earlier 2-core machine whose caches were not recorded) when the cache size cannot be read.
    """
    l2 = l2_cache_bytes()
    return CPU_EVAL_FLOATS if l2 is None else 2 * l2 * torch.get_num_threads() // 4


def cpu_eval_batch(model: nn.Module, probe: torch.Tensor) -> int:
    """The CPU evaluation chunk for `model`: `cpu_eval_floats()` over its largest activation per example.

    The largest output of any leaf module on `probe` (a few inputs), per example, sets the chunk: a
    power of two between 32 and 1024 (at 2**21 floats, ResNet-32: 16 x 32 x 32 floats per image ->
    128; LeNet -> 512; small MLPs -> 1024). A compiled model (`trainer.compile`) gets 256 without a probe (a probe
    would compile it for one more input shape).
    """
    if is_compiled(model):
        return 256
    sizes: list[int] = []

    def hook(module: nn.Module, args: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            sizes.append(out.numel())

    handles = [m.register_forward_hook(hook) for m in model.modules() if not any(m.children())]
    try:
        model(probe)
    finally:
        for h in handles:
            h.remove()
    per_example = max(sizes, default=1) / max(1, len(probe))
    return int(min(1024, max(32, 2 ** round(math.log2(cpu_eval_floats() / max(1.0, per_example))))))


def map_on_threads(fn: Any, items: Sequence[Any]) -> list[Any]:
    """`[fn(item) for item in items]` (under inference mode) on one Python thread per intra-op thread.

    Each worker runs with one intra-op thread, so the chunks of an evaluation run side by side instead
    of splitting each convolution across the cores: ResNet-32's test pass scores ~1.15-1.23x the
    images/s on the project's 2-core CPU, with bitwise-identical outputs (oneDNN's convolution
    forward splits its output, not its sums, across threads). The process's thread count is restored
    afterwards. Fewer than two threads or items: a plain loop.
    """
    threads = torch.get_num_threads()

    def work(item: Any) -> Any:
        with torch.inference_mode():
            return fn(item)

    if threads < 2 or len(items) < 2:
        return [work(item) for item in items]

    try:
        with ThreadPoolExecutor(
            min(threads, len(items)), initializer=torch.set_num_threads, initargs=(1,)
        ) as pool:
            return list(pool.map(work, items))
    finally:
        torch.set_num_threads(threads)


def execution_record(cfg: Any, device: torch.device, model: nn.Module, stacked: int = 0) -> dict[str, Any]:
    """The execution settings a run used, for its record's environment."""
    fmt = memory_format(model)
    return {
        "deterministic_algorithms": bool(cfg.deterministic),
        "threads": torch.get_num_threads(),
        "memory_format": "channels_last" if fmt == torch.channels_last else "contiguous",
        "precision": cfg.precision,
        "compile": bool(cfg.compile),
        "stacked_members": stacked,
        "device_type": device.type,
    }
