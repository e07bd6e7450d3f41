"""`make bench`: the speed numbers that go in BENCHMARKS.md.

Every number is a median over round-robin rounds (each a torch.utils.benchmark `blocked_autorange`),
and every ratio is the median of ratios taken within a round, all in the same run. On a CPU only the ratios are meant to be quoted; absolute times are printed for the
record and are comparable only on a GPU (pass `--device cuda`). Every loss and weighting option is
enumerated from `configs/`, so a new one is benchmarked without editing this file.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils import benchmark
from torch.utils.data import DataLoader, TensorDataset

from lossbench.config import options
from lossbench.losses import build_loss
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
    for name in options("loss"):
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
    for name in options("weighting"):
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


def bench_grid(cells: int) -> tuple[float, float]:
    """Wall time of `cells` tiny runs as one `lossbench run -m` vs one process per cell."""
    exe = str(Path(sys.executable).with_name("lossbench"))
    common = ["dataset=synthetic", "dataset.n_max=40", "trainer=smoke", "hydra.job_logging.root.level=WARN"]
    seeds = [str(s) for s in range(cells)]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([exe, "run", "-m", *common, f"seed={','.join(seeds)}", f"store.url=sqlite:///{tmp}/a.db"],
                       cwd=tmp, check=True, capture_output=True)  # fmt: skip
        one_process = time.perf_counter() - start
        start = time.perf_counter()
        for s in seeds:
            subprocess.run([exe, "run", *common, f"seed={s}", f"store.url=sqlite:///{tmp}/b.db"],
                           cwd=tmp, check=True, capture_output=True)  # fmt: skip
        per_cell = time.perf_counter() - start
    return one_process, per_cell


def main(argv: list[str] | None = None) -> None:
    """Run every benchmark and print Markdown tables."""
    parser = argparse.ArgumentParser(
        prog="python -m lossbench.benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--batch", type=int, default=4096, help="examples per loss/weighting call")
    parser.add_argument("--classes", type=int, default=100, help="classes per loss/weighting call")
    parser.add_argument("--rounds", type=int, default=9, help="round-robin rounds per comparison")
    parser.add_argument("--grid-cells", type=int, default=4, help="cells in the grid benchmark (0 skips it)")
    ns = parser.parse_args(argv)
    device = torch.device(ns.device)
    torch.manual_seed(0)
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}\n")  # fmt: skip

    print(
        f"## Losses: forward + backward, {ns.batch} x {ns.classes} logits (medians over rounds; ratio within a round)\n"
    )
    print("| loss | median ms | × ce |\n|---|---:|---:|")
    for name, t, r in bench_losses(device, ns.batch, ns.classes, ns.rounds):
        print(f"| {name} | {t * 1e3:.3f} | {r:.2f} |")

    print(
        f"\n## Weightings: CE + recipe, forward + backward, {ns.batch} x {ns.classes} (medians over rounds; ratio within a round)\n"
    )
    print("| weighting | median ms | × none |\n|---|---:|---:|")
    for name, t, r in bench_weightings(device, ns.batch, ns.classes, ns.rounds):
        print(f"| {name} | {t * 1e3:.3f} | {r:.2f} |")

    (_, slicing, _), (_, loader, loader_ratio) = bench_batching(device, ns.rounds)
    print("\n## Batching: one epoch, 12,000 x 64 inputs, MLP 64-128-10, batch 128 (median)\n")
    print("| method | median ms | × slicing |\n|---|---:|---:|")
    print(f"| tensor slicing (the loop) | {slicing * 1e3:.1f} | 1.00 |")
    print(f"| DataLoader(TensorDataset) | {loader * 1e3:.1f} | {loader_ratio:.2f} |")

    if ns.grid_cells > 0:
        one, per = bench_grid(ns.grid_cells)
        print(f"\n## Grid of {ns.grid_cells} tiny cells (single measurement, wall time)\n")
        print("| launch | seconds | × one process |\n|---|---:|---:|")
        print(f"| one `lossbench run -m` process | {one:.1f} | 1.00 |")
        print(f"| one process per cell | {per:.1f} | {per / one:.2f} |")


if __name__ == "__main__":
    main()
