"""The fast execution path: our SGD equals torch's, CPU runs are bitwise reproducible, the flag changes no number."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lossbench.data.spec import DataSpec, Split
from lossbench.losses.cross_entropy import CrossEntropyLoss
from lossbench.models.resnet_cifar import ResNetCifar
from lossbench.samplers.instance import InstanceSampler
from lossbench.tasks.base import prepare
from lossbench.tasks.classification import ClassificationTask
from lossbench.train.config import TrainerConfig
from lossbench.train.loop import fit
from lossbench.train.sgd import SGD
from lossbench.weighting.none import NoWeighting


@pytest.mark.parametrize("momentum,nesterov,wd", [(0.0, False, 0.0), (0.9, False, 5e-4), (0.9, True, 2e-4)])
def test_sgd_is_bitwise_torch_sgd(momentum, nesterov, wd):
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(7, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    b = torch.nn.Sequential(torch.nn.Linear(7, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    b.load_state_dict(a.state_dict())
    ours = SGD(a.parameters(), lr=0.1, momentum=momentum, weight_decay=wd, nesterov=nesterov)
    ref = torch.optim.SGD(b.parameters(), lr=0.1, momentum=momentum, weight_decay=wd, nesterov=nesterov)
    x, y = torch.randn(32, 7), torch.randint(0, 3, (32,))
    for step in range(5):
        for model, opt in ((a, ours), (b, ref)):
            for g in opt.param_groups:
                g["lr"] = 0.1 / (step + 1)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_sgd_state_dict_round_trip():
    p = torch.nn.Parameter(torch.ones(3))
    opt = SGD([p], lr=0.1, momentum=0.9)
    p.grad = torch.full((3,), 2.0)
    opt.step()
    q = torch.nn.Parameter(p.detach().clone())
    other = SGD([q], lr=0.5, momentum=0.9)
    other.load_state_dict(opt.state_dict())
    for o in (opt, other):
        o.param_groups[0]["params"][0].grad = torch.full((3,), 1.0)
        o.step()
    assert torch.equal(p, q)


def test_a_run_imports_no_dynamo():
    """Constructing a torch.optim optimizer imports torch._dynamo (seconds of every run); a run must not."""
    code = (
        "import sys; from tests.test_fast import _fit; _fit(True); "
        "sys.exit(3 if 'torch._dynamo' in sys.modules else 0)"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:] or "torch._dynamo was imported"


def _images(n, seed):
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randn(n, 3, 16, 16, generator=g), torch.randint(0, 4, (n,), generator=g))


def _fit(deterministic: bool) -> tuple[dict, dict]:
    from lossbench.data.augment import RandomCropFlip

    train = _images(64, 0)
    counts = torch.bincount(train.y, minlength=4).tolist()
    task = ClassificationTask(counts)
    data = DataSpec(name="t", train=train, val=_images(16, 1), test=_images(16, 2), task=task,
                    input_shape=(3, 16, 16), augment=RandomCropFlip(2))  # fmt: skip
    torch.manual_seed(0)
    model = ResNetCifar([3, 16, 16], 4, blocks_per_stage=1)
    sampler = InstanceSampler()
    cfg = TrainerConfig(epochs=2, batch_size=32, device="cpu", deterministic=deterministic, progress=False)
    loss, weighting = CrossEntropyLoss(), NoWeighting()
    prepare(task, train.y, loss, weighting, sampler)
    result = fit(model, loss, weighting, sampler, data, cfg, seed=0)
    metrics = {k: v for k, v in result.metrics.items() if k not in ("train_time_s", "peak_mem_mb")}
    return metrics, {k: v.clone() for k, v in model.state_dict().items()}


def test_cpu_reruns_are_bitwise_identical_and_the_flag_changes_no_number():
    """Two identical runs (channels_last conv net, augmentation, BatchNorm) end with the same weights
    and metrics, bit for bit; `deterministic=false` gives those same bits on CPU (`train/fast.py`)."""
    threads = torch.get_num_threads()
    runs = [_fit(deterministic=True), _fit(deterministic=True), _fit(deterministic=False)]
    assert torch.get_num_threads() == threads
    (m0, w0), *rest = runs
    for m, w in rest:
        assert m == m0
        assert all(torch.equal(w0[k], w[k]) for k in w0)


def test_map_on_threads_keeps_the_order_and_restores_the_thread_count(monkeypatch):
    from lossbench.train.fast import map_on_threads

    threads = torch.get_num_threads()
    seen: list[int] = []

    def square(i: int) -> int:
        seen.append(torch.get_num_threads())
        assert torch.is_inference_mode_enabled()
        return i * i

    assert map_on_threads(square, range(7)) == [i * i for i in range(7)]
    assert torch.get_num_threads() == threads
    if threads >= 2:
        assert set(seen) == {1}  # each worker: one intra-op thread
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert map_on_threads(square, range(3)) == [0, 1, 4]  # one thread: a plain loop


def test_a_conv_net_evaluates_its_chunks_on_threads_with_the_outputs_of_one_loop(monkeypatch):
    """`predict` with sized chunks on CPU: a conv net's chunks go to `map_on_threads`; the same outputs bitwise."""
    from lossbench.train import evaluate

    torch.manual_seed(0)
    model = ResNetCifar([3, 32, 32], 10, blocks_per_stage=1).to(memory_format=torch.channels_last)
    x = torch.randn(300, 3, 32, 32)
    calls: list[int] = []
    threaded = evaluate.map_on_threads

    def spy(fn, items):
        calls.append(len(items))
        return threaded(fn, items)

    monkeypatch.setattr(evaluate, "map_on_threads", spy)
    monkeypatch.setattr(evaluate, "cpu_eval_batch", lambda model, probe: 64)
    out = evaluate.predict(model, x, None, torch.device("cpu"))
    assert calls == [5]
    assert torch.equal(out, evaluate.predict(model, x, 64, torch.device("cpu")))  # a given size: one loop
    assert calls == [5]
