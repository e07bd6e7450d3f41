"""`make bench`: the speed numbers that go in BENCHMARKS.md, side by side in one invocation.

Sections (`--only`): `startup` (fixed cost of a one-cell run), `demo` (the 72-run demo grid), `resnet` (ResNet-32 train and test
images/s: lossbench, lossbench stacked, and the reference-style loop of `benchmarks/reference_loop.py`
on the same CIFAR-format files), `grids` (a 12-cell digits grid and a Fashion-MNIST-LT LeNet grid:
stacked vs one at a time vs one process per run, wall time and the training part), `device` (on a
GPU, the default `--device auto` picks it: ResNet-32 at bf16 on the GPU, one run and 8 stacked, images/s, seconds per epoch and
the fraction of the GPU's bf16 peak), and the loss / weighting / batching micro tables.
Every number is a median over rounds in which the compared options run round-robin, and every ratio is
the median of ratios taken within a round, so load that drifts during the run hits all options alike.
On a CPU only the ratios are meant to be quoted; absolute times are comparable only on a GPU. Losses
and weightings are enumerated from `configs/`, so a new one is benchmarked without editing this file.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils import benchmark
from torch.utils.data import DataLoader, TensorDataset

from lossbench.config import CONFIG_DIR
from lossbench.losses import build_loss
from lossbench.tasks.compatible import CLASSIFICATION, options_for
from lossbench.weighting import build_weighting


def _median(stmt, min_run_time: float) -> float:
    return (
        benchmark.Timer(stmt="f()", globals={"f": stmt}).blocked_autorange(min_run_time=min_run_time).median
    )


def interleaved(
    fns: dict[str, Callable[[], None]], baseline: str, rounds: int
) -> list[tuple[str, float, float]]:
    """(name, median seconds, median ratio to `baseline`) with the options timed round-robin.

    Each round times every option once (a `blocked_autorange` of about 0.1 s), so load from other
    processes that drifts over the run hits all options alike; ratios are taken within a round.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(_median(fn, 0.1))
    ratios = {n: [t / b for t, b in zip(ts, times[baseline], strict=True)] for n, ts in times.items()}
    return [(n, statistics.median(times[n]), statistics.median(ratios[n])) for n in fns]


def bench_losses(device: torch.device, n: int, c: int, rounds: int) -> list[tuple[str, float, float]]:
    """Forward + backward of each loss on (n, c) logits: (name, median s, ratio to ce)."""
    counts = [max(1, int(1000 * 0.01 ** (i / (c - 1)))) for i in range(c)]
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(n, c, generator=g).to(device).requires_grad_(True)
    targets = torch.randint(0, c, (n,), generator=g).to(device)
    fns = {}
    for name in options_for(CONFIG_DIR, "loss", CLASSIFICATION):  # (N, C) logits: classification losses
        loss = build_loss(name, counts).to(device)

        def step(loss=loss) -> None:
            logits.grad = None
            loss(logits, targets).mean().backward()
            if device.type == "cuda":
                torch.cuda.synchronize()

        fns[name] = step
    return interleaved(fns, "ce", rounds)


def bench_weightings(device: torch.device, n: int, c: int, rounds: int) -> list[tuple[str, float, float]]:
    """CE + each weighting (active), forward + backward: (name, median s, ratio to none)."""
    counts = [max(1, int(1000 * 0.01 ** (i / (c - 1)))) for i in range(c)]
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(n, c, generator=g).to(device).requires_grad_(True)
    features = torch.randn(n, 64, generator=g).to(device)
    targets = torch.randint(0, c, (n,), generator=g).to(device)
    ce = build_loss("ce", counts).to(device)
    fns = {}
    for name in options_for(CONFIG_DIR, "weighting", CLASSIFICATION):
        weighting = build_weighting(name, counts).to(device)
        weighting.on_epoch_start(10**6)  # deferred recipes active

        def step(w=weighting) -> None:
            logits.grad = None
            w(ce(logits, targets), targets, logits, features).backward()
            if device.type == "cuda":
                torch.cuda.synchronize()

        fns[name] = step
    return interleaved(fns, "none", rounds)


def bench_batching(device: torch.device, rounds: int) -> list[tuple[str, float, float]]:
    """One training epoch of a digits-sized MLP: tensor slicing (the loop's way) vs a DataLoader."""
    g = torch.Generator().manual_seed(0)
    x, y = (
        torch.randn(12000, 64, generator=g).to(device),
        torch.randint(0, 10, (12000,), generator=g).to(device),
    )
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)).to(
        device
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True)

    def train(batches) -> None:
        for xb, yb in batches:
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()

    def slicing() -> None:
        order = torch.randperm(len(y), device=device)
        train((x[order[i : i + 128]], y[order[i : i + 128]]) for i in range(0, len(y), 128))

    return interleaved({"slicing": slicing, "loader": lambda: train(loader)}, "slicing", rounds)


def _cifar_files(root: Path, per_class_train: int = 1000, per_class_test: int = 200) -> None:
    """CIFAR-10 "python version" batches of random images (the layout torchvision and lossbench read)."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_y = rng.permutation(np.repeat(np.arange(10), per_class_train))
    parts = {f"data_batch_{i + 1}": c for i, c in enumerate(np.array_split(train_y, 5))}
    parts["test_batch"] = np.repeat(np.arange(10), per_class_test)
    for name, labels in parts.items():
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": [int(v) for v in labels], "batch_label": "bench"}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)


def _raw_cifar(root: Path, counts: list[int]) -> tuple:
    """The written batches as uint8 HWC arrays, the train split cut to `counts` images per class."""
    import pickle

    import numpy as np

    folder = root / "cifar-10-batches-py"
    batches = [pickle.load(open(folder / f"data_batch_{i}", "rb")) for i in range(1, 6)]
    x = np.concatenate([b["data"] for b in batches]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    y = np.concatenate([b["labels"] for b in batches])
    keep = np.concatenate([np.flatnonzero(y == c)[:n] for c, n in enumerate(counts)])
    test = pickle.load(open(folder / "test_batch", "rb"))
    tx = test["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return x[keep], y[keep], tx, np.asarray(test["labels"])


def _resnet_member(data: Any, seed: int) -> Any:
    """A ResNet-32 CE run on `data` built as `run.py` builds one: seeded model, RNG state, fitted components."""
    from lossbench.losses.cross_entropy import CrossEntropyLoss
    from lossbench.models.resnet_cifar import ResNetCifar
    from lossbench.samplers.instance import InstanceSampler
    from lossbench.tasks.base import prepare
    from lossbench.train.checkpoint import rng_state
    from lossbench.train.stacked import Member
    from lossbench.weighting.none import NoWeighting

    torch.manual_seed(seed)
    model = ResNetCifar([3, 32, 32], 10)
    state = rng_state()
    loss, weighting, sampler = CrossEntropyLoss(), NoWeighting(), InstanceSampler()
    prepare(data.task, data.train.y, loss, weighting, sampler)
    return Member(model, loss, weighting, sampler, seed, state)


def reference_loop() -> Any:
    """The module `benchmarks/reference_loop.py` of the source tree (the ResNet-32 baseline)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "reference_loop", Path(__file__).resolve().parents[2] / "benchmarks" / "reference_loop.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def bench_resnet(rounds: int, members: int) -> list[tuple[str, float, float]]:
    """ResNet-32 on a CIFAR-10-LT-sized set (exp, ratio 100: 2,478 train / 2,000 test images).

    Returns (what, median images/s, median ratio to the reference-style loop of the same phase),
    timed round-robin: one training epoch and one pass over the test set per option per round. Two
    rows time each model's SGD steps alone on one fixed batch (no sampling, augmentation or
    loading): the ceiling either loop can reach with its model and layout in fp32.
    """
    from lossbench.data.cifar import CIFAR10
    from lossbench.data.spec import DataSpec
    from lossbench.models.resnet_cifar import ResNetCifar
    from lossbench.train.config import TrainerConfig
    from lossbench.train.evaluate import Evaluator
    from lossbench.train.fast import apply_determinism, memory_format
    from lossbench.train.loop import fit
    from lossbench.train.stacked import fit_stacked

    ref = reference_loop()
    with tempfile.TemporaryDirectory() as tmp:
        _cifar_files(Path(tmp))
        data = CIFAR10(root=tmp, imbalance_ratio=100, verify_md5=False).load()
        raw = _raw_cifar(Path(tmp), list(data.task.group_counts))
    # training alone: the test split cut to one image, so `fit`'s closing evaluation costs nothing
    train_only = DataSpec(name=data.name, train=data.train, val=data.val, test=type(data.test)(data.test.x[:1], data.test.y[:1]),
                          task=data.task, input_shape=data.input_shape, augment=data.augment)  # fmt: skip
    cfg = TrainerConfig(epochs=1, batch_size=128, lr=0.1, weight_decay=2e-4, device="cpu", progress=False)

    n_train, n_test = len(data.train), len(data.test)
    eval_model = ResNetCifar([3, 32, 32], 10)  # in the layout `fit` leaves a conv net in (channels_last)
    eval_model.to(memory_format=memory_format(eval_model))
    ref_train, ref_test = ref.loaders(*raw)
    ref_model = ref.reference_resnet32()
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)

    def ours_train(precision: str = "fp32") -> float:  # bf16: opt-in, fast on CPUs with AVX512-BF16 or AMX
        m = _resnet_member(data, 0)
        start = time.perf_counter()
        fit(
            m.model,
            m.loss,
            m.weighting,
            m.sampler,
            train_only,
            dataclasses.replace(cfg, precision=precision),
            seed=0,
        )
        return n_train / (time.perf_counter() - start)

    def ours_test() -> float:
        apply_determinism(True, torch.device("cpu"))
        start = time.perf_counter()
        Evaluator.of(data, cfg, torch.device("cpu")).evaluate(eval_model, ("test",))
        return n_test / (time.perf_counter() - start)

    def stacked_train() -> float:
        group = [_resnet_member(data, s) for s in range(members)]
        start = time.perf_counter()
        fit_stacked(group, train_only, cfg)
        return n_train / (time.perf_counter() - start)  # images/s per member (summed / members)

    def ref_train_epoch() -> float:
        start = time.perf_counter()
        ref.train_epoch(ref_model, ref_train, ref_opt)
        return n_train / (time.perf_counter() - start)

    step_x, step_y = torch.randn(128, 3, 32, 32), torch.randint(0, 10, (128,))

    def model_steps(model: torch.nn.Module, fmt: torch.memory_format) -> float:
        """The reference's epoch of SGD steps on one fixed batch, no loader: the model's own training speed."""
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
        x = step_x.contiguous(memory_format=fmt)
        batches = [
            (x[: min(128, n_train - i)], step_y[: min(128, n_train - i)]) for i in range(0, n_train, 128)
        ]
        start = time.perf_counter()
        ref.train_epoch(model, batches, opt)
        return n_train / (time.perf_counter() - start)

    ceiling_ref = ref.reference_resnet32()
    ceiling_ours = ResNetCifar([3, 32, 32], 10).to(memory_format=torch.channels_last)

    def ref_test_pass() -> float:
        start = time.perf_counter()
        ref.test_accuracy(ref_model, ref_test)
        return n_test / (time.perf_counter() - start)

    fns = {"reference train": ref_train_epoch, "lossbench train": ours_train,
           "lossbench train, trainer.precision=bf16 (opt-in)": lambda: ours_train("bf16"),
           f"lossbench stacked x{members} train (per member)": stacked_train,
           "model steps alone, no data pipeline: the reference's (NCHW)": lambda: model_steps(ceiling_ref, torch.contiguous_format),
           "model steps alone, no data pipeline: lossbench's (channels_last, in-place ReLUs)":
               lambda: model_steps(ceiling_ours, torch.channels_last),
           "reference test": ref_test_pass, "lossbench test": ours_test}  # fmt: skip
    speeds: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(rounds):
        for name, fn in fns.items():
            speeds[name].append(fn())
            print(f"  round {r + 1}: {name}: {speeds[name][-1]:.0f} images/s", file=sys.stderr, flush=True)
    rows = []
    for name, values in speeds.items():
        base = speeds["reference test" if "test" in name else "reference train"]
        ratios = [v / b for v, b in zip(values, base, strict=True)]
        rows.append((name, statistics.median(values), statistics.median(ratios)))
    return rows


# Dense bf16 tensor-core peak (FLOP/s, no sparsity) of GPUs by a part of their name, from the vendors' data sheets.
BF16_PEAK = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12,
             "L4": 121e12, "4090": 165e12}  # fmt: skip


def _peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in BF16_PEAK.items() if k in name), None)


def train_flops_per_image(model: torch.nn.Module, shape: tuple[int, ...], batch: int = 8) -> float:
    """FLOPs of one training image (forward + backward), counted by `torch.utils.flop_counter`."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch, *shape)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


def bench_device(
    device: torch.device, rounds: int, members: int
) -> list[tuple[str, float, float, float | None]]:
    """ResNet-32 at `trainer.precision=bf16` on `device` (a GPU), one run and `members` stacked.

    Returns (what, median images/s per run, median seconds per epoch, fraction of the device's bf16
    peak or None). A row's epoch is one training epoch of `fit` / `fit_stacked` on the CIFAR-10-LT-sized
    set (2,478 images), with the test split (2,000 images) evaluated after it; the first round warms
    up (cuDNN autotuning, allocator) and is dropped. The fraction of peak counts the model's training
    FLOPs per image (`train_flops_per_image`) times the images/s of all members together.
    """
    from lossbench.data.cifar import CIFAR10
    from lossbench.models.resnet_cifar import ResNetCifar
    from lossbench.train.config import TrainerConfig
    from lossbench.train.loop import fit
    from lossbench.train.stacked import fit_stacked

    with tempfile.TemporaryDirectory() as tmp:
        _cifar_files(Path(tmp))
        data = CIFAR10(root=tmp, imbalance_ratio=100, verify_md5=False).load()
    cfg = TrainerConfig(epochs=1, batch_size=128, lr=0.1, weight_decay=2e-4, device=str(device),
                        precision="bf16", progress=False)  # fmt: skip
    flops = train_flops_per_image(ResNetCifar([3, 32, 32], 10), (3, 32, 32))
    peak = _peak(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def one() -> float:
        m = _resnet_member(data, 0)
        sync()
        start = time.perf_counter()
        fit(m.model, m.loss, m.weighting, m.sampler, data, cfg, seed=0)
        sync()
        return time.perf_counter() - start

    def stacked() -> float:
        group = [_resnet_member(data, s) for s in range(members)]
        sync()
        start = time.perf_counter()
        fit_stacked(group, data, cfg)
        sync()
        return time.perf_counter() - start

    ways = {"one run": (one, 1), f"{members} runs stacked": (stacked, members)}
    seconds: dict[str, list[float]] = {k: [] for k in ways}
    for r in range(rounds + 1):
        for name, (fn, _) in ways.items():
            t = fn()
            print(
                f"  round {r}{' (warm-up)' if r == 0 else ''}: {name}: {t:.2f} s per epoch",
                file=sys.stderr,
                flush=True,
            )
            if r:
                seconds[name].append(t)
    rows = []
    for name, (_, k) in ways.items():
        epoch = statistics.median(seconds[name])
        per_run = len(data.train) / epoch  # images/s of each run (training and its test pass in the epoch)
        rows.append((name, per_run, epoch, per_run * k * flops / peak if peak else None))
    return rows


def _lossbench(*args: str, cwd: str) -> float:
    exe = str(Path(sys.executable).with_name("lossbench"))
    start = time.perf_counter()
    subprocess.run([exe, "run", *args], cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def bench_startup(rounds: int) -> float:
    """Median wall time of the one-cell smoke run `lossbench run dataset=synthetic trainer.epochs=1`."""
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            times.append(
                _lossbench(
                    "dataset=synthetic", "trainer.epochs=1", f"store.url=sqlite:///{tmp}/{r}.db", cwd=tmp
                )
            )
    return statistics.median(times)


GRIDS = {
    "digits": (["dataset=digits", "loss=ce,focal,label_smoothing,balanced_softmax", "trainer.epochs=30"], 3),
    "fashion_mnist": (["dataset=fashion_mnist", "model=lenet", "loss=ce,focal", "trainer.epochs=2",
                       "trainer.batch_size=128"], 5),
}  # fmt: skip


def bench_demo(rounds: int) -> float:
    """Median wall time of the demo grid, `lossbench run -m experiment=demo` (72 runs), each into a new store."""
    with tempfile.TemporaryDirectory() as tmp:
        return statistics.median(
            _lossbench("-m", "experiment=demo", f"store.url=sqlite:///{tmp}/{r}.db", cwd=tmp)
            for r in range(rounds)
        )


def _training_seconds(db: str) -> float:
    """The training part of a grid: the sum of its runs' `train_time_s` (a stacked group's wall time, shared)."""
    import json
    import sqlite3

    with sqlite3.connect(db) as conn:
        return sum(
            json.loads(m).get("train_time_s") or 0.0 for (m,) in conn.execute("select metrics from runs")
        )


def bench_grid(name: str, rounds: int) -> list[tuple[str, float, float, float, float]]:
    """A grid three ways, round-robin: stacked (the default), one at a time, one process per run.

    Returns (how, median wall seconds, median ratio to stacked, median training seconds, median
    training ratio to stacked): the training part is the sum of the runs' `train_time_s`. Each way
    writes its own store.
    """
    over, seeds = GRIDS[name]
    seed_arg = "seed=" + ",".join(str(s) for s in range(seeds))
    common = [*over, seed_arg, "hydra.job_logging.root.level=WARN", "trainer.progress=false"]
    cells = [[*[o for o in over if "," not in o], f"loss={loss}", f"seed={s}"]
             for loss in next(o for o in over if o.startswith("loss=")).split("=", 1)[1].split(",") for s in range(seeds)]  # fmt: skip
    times: dict[str, list[float]] = {"stacked (default)": [], "one at a time (trainer.stack=off)": [], "one process per run": []}  # fmt: skip
    trained: dict[str, list[float]] = {k: [] for k in times}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            times["stacked (default)"].append(
                _lossbench("-m", *common, f"store.url=sqlite:///{tmp}/s{r}.db", cwd=tmp)
            )
            times["one at a time (trainer.stack=off)"].append(
                _lossbench("-m", *common, "trainer.stack=off", f"store.url=sqlite:///{tmp}/o{r}.db", cwd=tmp)
            )
            times["one process per run"].append(sum(
                _lossbench(*cell, "hydra.job_logging.root.level=WARN", f"store.url=sqlite:///{tmp}/p{r}.db", cwd=tmp)
                for cell in cells
            ))  # fmt: skip
            for key, db in zip(times, ("s", "o", "p"), strict=True):
                trained[key].append(_training_seconds(f"{tmp}/{db}{r}.db"))

    def ratios(values: dict[str, list[float]], k: str) -> float:
        return statistics.median([t / b for t, b in zip(values[k], values["stacked (default)"], strict=True)])

    return [
        (k, statistics.median(times[k]), ratios(times, k), statistics.median(trained[k]), ratios(trained, k))
        for k in times
    ]


SECTIONS = ("startup", "demo", "resnet", "grids", "device", "losses", "weightings", "batching")


def main(argv: list[str] | None = None) -> None:
    """Run the selected benchmarks and print Markdown tables (with how long each section took)."""
    parser = argparse.ArgumentParser(
        prog="python -m lossbench.benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (cuda when present), cpu or cuda: of the device section and the loss/weighting/batching tables",
    )
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated sections of {', '.join(SECTIONS)}"
    )
    parser.add_argument("--batch", type=int, default=4096, help="examples per loss/weighting call")
    parser.add_argument("--classes", type=int, default=100, help="classes per loss/weighting call")
    parser.add_argument(
        "--rounds", type=int, default=5, help="round-robin rounds of the loss/weighting/batching tables"
    )
    parser.add_argument(
        "--model-rounds", type=int, default=3, help="rounds of the startup, demo and ResNet-32 benchmarks"
    )
    parser.add_argument("--grid-rounds", type=int, default=3, help="rounds of each grid benchmark")
    parser.add_argument("--members", type=int, default=4, help="members of the stacked ResNet-32 group (CPU)")
    parser.add_argument(
        "--gpu-members",
        type=int,
        default=8,
        help="members of the stacked ResNet-32 group of the device section",
    )
    parser.add_argument(
        "--grids", default=",".join(GRIDS), help=f"grids of the grids section: {', '.join(GRIDS)}"
    )
    ns = parser.parse_args(argv)
    sections = [s.strip() for s in ns.only.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if ns.device == "auto" else ns.device
    )
    torch.manual_seed(0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, cores {os.cpu_count()}, "
          f"load average at start {load:.1f} (a number near or above the core count means a busy machine: "
          "ratios are then preliminary)\n")  # fmt: skip
    for section in sections:
        start = time.perf_counter()
        globals()[f"_print_{section}"](ns, device)
        print(f"\n(section {section}: {time.perf_counter() - start:.0f} s)\n")


def _print_startup(ns: argparse.Namespace, device: torch.device) -> None:
    t = bench_startup(ns.model_rounds)
    print(f"## Fixed cost of a one-cell run (median of {ns.model_rounds}, wall time)\n")
    print("| command | seconds |\n|---|---:|")
    print(f"| `lossbench run dataset=synthetic trainer.epochs=1` | {t:.2f} |")


def _print_demo(ns: argparse.Namespace, device: torch.device) -> None:
    t = bench_demo(ns.model_rounds)
    print(f"## The demo grid (median of {ns.model_rounds}, wall time)\n")
    print("| command | seconds |\n|---|---:|")
    print(f"| `lossbench run -m experiment=demo` (72 runs, a new store each) | {t:.1f} |")


def _print_resnet(ns: argparse.Namespace, device: torch.device) -> None:
    rows = bench_resnet(ns.model_rounds, ns.members)
    print(
        f"## ResNet-32, CIFAR-10-LT-sized (2,478 train / 2,000 test images), CPU (median of {ns.model_rounds} rounds)\n"
    )
    print("| what | images/s | × reference-style loop (same phase) |\n|---|---:|---:|")
    for name, speed, ratio in rows:
        print(f"| {name} | {speed:.0f} | {ratio:.2f} |")


def _print_device(ns: argparse.Namespace, device: torch.device) -> None:
    if device.type != "cuda":
        print("## ResNet-32 on a GPU: skipped, no GPU here (`make bench` on a machine with one runs it)")
        return
    rows = bench_device(device, ns.model_rounds, ns.gpu_members)
    name = torch.cuda.get_device_name(device)
    print(
        f"## ResNet-32 on {name}, trainer.precision=bf16, batch 128 (median of {ns.model_rounds} rounds after a warm-up)\n"
    )
    print("An epoch: 2,478 training images (CIFAR-10-LT-sized) and the test pass over 2,000 images.\n")
    print("| what | images/s per run | s per epoch | × 200 epochs | fraction of bf16 peak (all members) |")
    print("|---|---:|---:|---:|---:|")
    for what, speed, epoch, frac in rows:
        share = "n/a (unknown GPU)" if frac is None else f"{frac:.1%}"
        print(f"| {what} | {speed:.0f} | {epoch:.2f} | {200 * epoch:.0f} s | {share} |")


def _print_grids(ns: argparse.Namespace, device: torch.device) -> None:
    for name in [g.strip() for g in ns.grids.split(",") if g.strip()]:
        over, seeds = GRIDS[name]
        if name == "fashion_mnist" and not _fashion_mnist_available():
            print(f"## Grid {name}: skipped (Fashion-MNIST files absent; `make data-fashion-mnist`)\n")
            continue
        rows = bench_grid(name, ns.grid_rounds)
        print(
            f"## Grid {name}: {' '.join(over)}, {seeds} seeds (median of {ns.grid_rounds} rounds, wall time)\n"
        )
        print("| how | wall s | × stacked | training part s | × stacked |\n|---|---:|---:|---:|---:|")
        for how, t, r, train, train_ratio in rows:
            print(f"| {how} | {t:.1f} | {r:.2f} | {train:.2f} | {train_ratio:.2f} |")
        print()


def _fashion_mnist_available() -> bool:
    from lossbench.config import compose

    root = Path(str(compose(["dataset=fashion_mnist"]).dataset.root))
    return (root / "FashionMNIST" / "raw").is_dir() or Path("/usr/share/datasets/fashion-mnist").is_dir()


def _print_losses(ns: argparse.Namespace, device: torch.device) -> None:
    print(
        f"## Losses: forward + backward, {ns.batch} x {ns.classes} logits (medians over rounds; ratio within a round)\n"
    )
    print("| loss | median ms | × ce |\n|---|---:|---:|")
    for name, t, r in bench_losses(device, ns.batch, ns.classes, ns.rounds):
        print(f"| {name} | {t * 1e3:.3f} | {r:.2f} |")


def _print_weightings(ns: argparse.Namespace, device: torch.device) -> None:
    print(
        f"## Weightings: CE + recipe, forward + backward, {ns.batch} x {ns.classes} (medians over rounds; ratio within a round)\n"
    )
    print("| weighting | median ms | × none |\n|---|---:|---:|")
    for name, t, r in bench_weightings(device, ns.batch, ns.classes, ns.rounds):
        print(f"| {name} | {t * 1e3:.3f} | {r:.2f} |")


def _print_batching(ns: argparse.Namespace, device: torch.device) -> None:
    (_, slicing, _), (_, loader, loader_ratio) = bench_batching(device, ns.rounds)
    print("## Batching: one epoch, 12,000 x 64 inputs, MLP 64-128-10, batch 128 (median)\n")
    print("| method | median ms | × slicing |\n|---|---:|---:|")
    print(f"| tensor slicing (the loop) | {slicing * 1e3:.1f} | 1.00 |")
    print(f"| DataLoader(TensorDataset) | {loader * 1e3:.1f} | {loader_ratio:.2f} |")


if __name__ == "__main__":
    main()
