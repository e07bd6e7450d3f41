"""Several runs trained as one stacked model: the members of a grid cell group, one forward per batch.

Runs that share data, architecture, sampler and schedule (they may differ in seed, loss, weighting,
learning rate and weight decay) have parameters of identical shapes. `torch.func.stack_module_state` stacks them into tensors with a
leading member dimension K, and one `vmap(functional_call(...))` computes every member's batch at
once (a convolution over K members becomes one grouped convolution). Each member keeps everything
that makes it the run it would be alone:

* its own initialisation (built with its own seed by the caller), sampler generator (seeded with its
  seed, as `fit` does) and augmentation generator (continuing torch's global generator from where
  its model's initialisation left it, which is what an alone run's augmentation draws from);
* its own BatchNorm running statistics (buffers are stacked too, so vmap updates each member's);
* its own loss and weighting objects (recipes with state, learnable parameters, DRW schedules);
  members whose losses and weightings are equal and stateless per step (a grid's seeds of one
  recipe) have their objectives computed in one call on their concatenated batches (`_Objectives`);
* SGD on the stacked tensors is elementwise, so each member's update is its alone update; members may
  have their own learning rate and weight decay (a study's trials: `Member.lr`), applied per member
  along the stacked dimension, with the group's schedule shape.

The loss is `sum_k objective_k`, so member k's gradient is the gradient of its own objective.
Evaluation is one batched inference-mode forward for all members (`_predict`, the stacked
`predict`) and one batched scoring (`Evaluator.scores_stacked`: the task's `metrics_stacked`, the
same metrics as `Evaluator.scores` per member); the best/oracle selection and the record come from
`train/loop.py` (`Selection`), per member. Each member's model receives its trained slice at the end.
A member whose epoch objective is not finite ends with `Diverged` and is dropped from the stack (its
slices removed from parameters and momentum); the others go on. A member whose epoch callback raises
(a lost claim) is dropped the same way with that exception as its outcome.

Agreement with training alone (CPU): the same arithmetic, but vmap's grouped kernels may sum in a
different order, so weights differ by float rounding (~1e-7 relative per step) that training can
grow; `tests/test_stacked.py` checks that metrics agree within 1e-4 after a few epochs.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from lossbench.data.spec import DataSpec
from lossbench.losses.base import Loss
from lossbench.models.base import Classifier
from lossbench.samplers.base import Sampler
from lossbench.train.checkpoint import load_checkpoint, save_checkpoint
from lossbench.train.config import TrainerConfig
from lossbench.train.evaluate import Evaluator
from lossbench.train.fast import apply_determinism, autocast, execution_record
from lossbench.train.loop import (
    Diverged,
    EpochCallback,
    FitResult,
    Selection,
    _peak_memory_mb,
    is_due,
    resolve_device,
    set_lr,
)
from lossbench.train.sgd import SGD
from lossbench.weighting.base import Weighting, reduces_rows


@dataclass
class Member:
    """One run of a stacked group.

    Attributes:
        model: The run's model, initialised with its own seed; it ends holding the trained weights.
        loss, weighting, sampler: The run's components, already `fit` to the class counts.
        seed: The run's training seed (its sampler generator is seeded with it).
        aug_state: torch's global CPU (and CUDA) RNG state right after `model` was built
            (`train.checkpoint.rng_state()`): the run's augmentation continues from it.
        on_epoch_end: Called with each epoch's row (heartbeat, logging); raising drops the member.
        lr, weight_decay: The run's own learning rate and weight decay when they differ from the
            group's trainer config (a study's trials); the schedule's shape is the group's.
        objective: Members with the same (not None) value have equal losses and weightings (the
            same configs, fitted to the same data): `fit_stacked` computes their objectives in one
            call when the loss is rowwise and the weighting reduces rows (`_Objectives`).
    """

    model: Classifier
    loss: Loss
    weighting: Weighting
    sampler: Sampler
    seed: int
    aug_state: dict[str, Any]
    on_epoch_end: EpochCallback | None = None
    lr: float | None = None  # the run's own `trainer.lr` (None: the group's)
    weight_decay: float | None = None  # the run's own `trainer.weight_decay` (None: the group's)
    objective: str | None = None  # equal for members with equal loss and weighting (None: its own)


def unstackable(
    model: nn.Module, loss: Loss, weighting: Weighting, stage2: Any = None, cfg: TrainerConfig | None = None
) -> str | None:
    """Why a run with these components (and trainer settings) cannot be trained stacked (None if it can)."""
    if cfg is not None and cfg.grad_clip:
        return "gradient clipping takes each run's own global norm"
    if (
        cfg is not None
        and resolve_device(cfg.device).type == "cpu"
        and any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())
        and _chain_forward(model) is None
    ):  # measured (BENCHMARKS.md): vmapped convolutions on CPU are slower than one model after another
        return "on CPU a stacked conv net (other than LeNet) trains slower than its members one after another"
    if any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules()):
        return "dropout draws from one generator for all members"
    for part, base in ((loss, Loss), (weighting, Weighting)):
        if type(part).on_epoch_end is not base.on_epoch_end:
            return f"{type(part).__name__} acts on the model after each epoch"
        if part.fixed_lr is not None:
            return f"{type(part).__name__} has parameters on their own learning rate"
    return None


def _layers(model: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """(parameter prefix, layer) of the chain `features` runs for a plain `MLP` or `LeNet`, else None."""
    from lossbench.models.lenet import LeNet
    from lossbench.models.mlp import MLP

    if type(model) is MLP:
        return [(f"model.body.{n}", layer) for n, layer in model.body.named_children()]
    if type(model) is LeNet:
        return [(f"model.{part}.{n}", layer) for part in ("conv", "fc")
                for n, layer in getattr(model, part).named_children()]  # fmt: skip
    return None


def _chain_forward(model: nn.Module) -> Any:
    """A stacked forward `(params, x) -> (features, logits)` for a plain `MLP` or `LeNet`, else None.

    These models are chains of Linear, ReLU, Flatten, 2-d convolutions and max-pooling with a
    linear or cosine head. Over K members, a linear layer is one batched matrix product (`baddbmm`
    on (K, B, D)) and a convolution one grouped convolution: the members' batches side by side as
    channel groups (B, K * C, H, W), channels-last. A ReLU right before a max-pooling is applied
    after it (the same values and gradients, on a quarter of the elements). This is the arithmetic
    of `vmap(functional_call(model))` without its re-binding of the parameters on every call,
    which costs more than the products for small models, and faster than vmap's convolutions on a
    CPU. `forward(params, x, shared=True)` takes one input (N, ...) for all members (evaluation):
    an MLP's first product is then a broadcast `matmul`; images are repeated K times, since on a
    CPU the grouped convolution over channels-last copies beats one dense convolution over the
    stacked filters, whose single-channel input leaves its output (and the pooling after it) in the
    slow layout. Any other model, or a subclass, goes through vmap.
    """
    from lossbench.models.heads import NormedLinear

    layers = _layers(model)
    if layers is None or type(model.head) not in (nn.Linear, NormedLinear):
        return None
    plan: list[tuple[Any, ...]] = []
    for key, layer in layers:
        if isinstance(layer, (nn.Linear, nn.Conv2d)) and layer.bias is None:
            return None
        if isinstance(layer, nn.Linear):
            plan.append(("linear", key))
        elif isinstance(layer, nn.Conv2d) and layer.groups == 1 and layer.padding_mode == "zeros" \
                and not isinstance(layer.padding, str):  # fmt: skip
            plan.append(("conv", key, layer.stride, layer.padding, layer.dilation))
        elif isinstance(layer, nn.MaxPool2d) and not layer.return_indices:
            pool = ("pool", layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.ceil_mode)
            plan[-1:] = [pool, plan[-1]] if plan and plan[-1] == ("relu",) else [*plan[-1:], pool]
        elif isinstance(layer, nn.ReLU):
            plan.append(("relu",))
        elif isinstance(layer, nn.Flatten) and (layer.start_dim, layer.end_dim) == (1, -1):
            plan.append(("flatten",))
        elif not isinstance(layer, nn.Identity) and not (isinstance(layer, nn.Dropout) and layer.p == 0):
            return None
    images = any(op[0] == "conv" for op in plan)
    if (plan[0][0] != "flatten") if not images else (plan[0][0] != "conv" or ("flatten",) not in plan):
        return None
    normed = type(model.head) is NormedLinear

    def linear(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        if x.dim() == 3:
            return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
        return torch.matmul(x, w.transpose(1, 2)) + b.unsqueeze(1)  # shared input (N, D) -> (K, N, H)

    def forward(params: dict[str, Tensor], x: Tensor, shared: bool = False) -> tuple[Tensor, Tensor]:
        """Features and logits (K, B, .) of inputs (K, B, ...), or of one input (N, ...) when `shared`."""
        k = params[f"{plan[0][1]}.weight"].shape[0] if images else 0
        if images:  # members side by side as channel groups (B, K * C, H, W), channels-last
            h = (x.unsqueeze(0).expand(k, *x.shape) if shared else x).transpose(0, 1).flatten(1, 2)
            h = h.contiguous(memory_format=torch.channels_last)
        else:
            h = x.flatten(1) if shared else x.flatten(2)
        for op in plan:
            if op[0] == "conv":
                w, b = params[f"{op[1]}.weight"], params[f"{op[1]}.bias"]
                h = F.conv2d(h, w.flatten(0, 1), b.flatten(), op[2], op[3], op[4], k)
            elif op[0] == "pool":
                h = F.max_pool2d(h, op[1], op[2], op[3], op[4], op[5])
            elif op[0] == "relu":
                h = torch.relu(h)
            elif op[0] == "flatten" and images:  # (B, K * C, H, W) -> (K, B, C * H * W)
                h = h.reshape(h.shape[0], k, -1).transpose(0, 1)
            elif op[0] == "linear":
                h = linear(h, params[f"{op[1]}.weight"], params[f"{op[1]}.bias"])
        if normed:
            logits = torch.matmul(F.normalize(h, dim=-1), F.normalize(params["model.head.weight"], dim=1))
        else:
            logits = linear(h, params["model.head.weight"], params["model.head.bias"])
        return h, logits

    return forward


class _FeaturesAndLogits(nn.Module):
    """`model` with one forward returning (features (N, D), logits (N, C))."""

    def __init__(self, model: Classifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.model.features(x)
        return feats, self.model.head(feats)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _generator(state: dict[str, Any], device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.set_state(state["cuda"][device.index or 0] if device.type == "cuda" else state["cpu"])
    return gen


def _shares(m: Member) -> bool:
    """Whether `m`'s objective can be computed in one call with equal members' (see `_Objectives`)."""
    return (
        m.objective is not None
        and m.loss.rowwise
        and reduces_rows(m.weighting)
        and not any(p.requires_grad for mod in (m.loss, m.weighting) for p in mod.parameters())
    )


def _equal_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class _Objectives:
    """The objectives (K,) of the active members from their outputs, one call per set of equal members.

    Members with the same `Member.objective`, a rowwise loss, a weighting that reduces rows and no
    learnable loss or weighting parameters (`_shares`) are one set: their losses are computed on
    the concatenated batches (K_s * B, ...) and reduced row by row (`ClassWeighting.forward_rows`),
    which equals calling each member's loss and weighting on its own batch up to the order of the
    reduction's sums. Their loss and weighting states are compared once (a mismatch keeps members
    apart). Every other member is called on its own batch, as `loop.fit` does.
    """

    def __init__(self, members: list[Member], active: list[int], device: torch.device) -> None:
        sets: dict[str, list[int]] = {}
        alone: list[list[int]] = []
        for j, k in enumerate(active):
            m = members[k]
            key = m.objective if _shares(m) else None
            first = members[active[sets[key][0]]] if key in sets else None
            if key is None or (first is not None and not (
                _equal_state(first.loss, m.loss) and _equal_state(first.weighting, m.weighting)
            )):  # fmt: skip
                alone.append([j])
            else:
                sets.setdefault(key, []).append(j)
        self.parts = [*sets.values(), *alone]
        order = [j for part in self.parts for j in part]
        self.members = [members[active[part[0]]] for part in self.parts]
        self.index = [
            slice(part[0], part[-1] + 1) if part == list(range(part[0], part[-1] + 1))
            else torch.tensor(part, device=device)
            for part in self.parts
        ]  # fmt: skip
        # position j's objective is the concatenated parts' entry unorder[j]
        self.unorder = None if order == sorted(order) else torch.tensor(order, device=device).argsort()

    def __call__(self, logits: Tensor, feats: Tensor, yb: Tensor) -> Tensor:
        out = []
        for m, part, at in zip(self.members, self.parts, self.index, strict=True):
            z, y = logits[at].float(), yb[at]
            if len(part) == 1:
                f = feats[at].float()
                out.append(m.weighting(m.loss(z[0], y[0]), y[0], z[0], f[0]).reshape(1))
            else:
                losses = m.loss(z.flatten(0, 1), y.flatten(0, 1)).view(len(part), -1)
                out.append(m.weighting.forward_rows(losses, y))
        objectives = torch.cat(out)
        return objectives if self.unorder is None else objectives[self.unorder]


def fit_stacked(
    members: list[Member],
    data: DataSpec,
    cfg: TrainerConfig,
    checkpoint_dir: str | Path | None = None,
    evaluator: Evaluator | None = None,
) -> list[FitResult | BaseException]:
    """Train `members` together on `data`; one `FitResult` (or the exception that ended it) per member.

    Every member trains exactly as `loop.fit` would train it alone (see the module docstring). With
    `checkpoint_dir`, the group continues after the checkpoint found there and saves one every
    `cfg.checkpoint_every` epochs; the directory must be specific to this group's members.
    """
    if not members:
        return []
    device = resolve_device(cfg.device)
    apply_determinism(cfg.deterministic, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for m in members:
        m.model.to(device), m.loss.to(device), m.weighting.to(device)
    x, y = data.train.x.to(device), data.train.y.to(device)
    wrappers = [_FeaturesAndLogits(m.model) for m in members]
    params, buffers = stack_module_state(wrappers)  # type: ignore[arg-type]
    base = copy.deepcopy(wrappers[0])

    def forward(p: dict[str, Tensor], b: dict[str, Tensor], xb: Tensor) -> tuple[Tensor, Tensor]:
        return functional_call(base, (p, b), (xb,))

    chain = _chain_forward(members[0].model)
    batched = vmap(forward, randomness="error") if chain is None else (lambda p, b, xb: chain(p, xb))
    active = list(range(len(members)))  # members still training, in stack order
    sampler_gens = [torch.Generator().manual_seed(m.seed) for m in members]
    aug_gens = [_generator(m.aug_state, device) for m in members]
    evaluator = evaluator if evaluator is not None else Evaluator.of(data, cfg, device)
    tracks = [Selection(cfg, evaluator) for _ in members]
    outcomes: list[FitResult | BaseException | None] = [None] * len(members)

    def extra(k: int) -> list[Tensor]:
        return [
            p for mod in (members[k].loss, members[k].weighting) for p in mod.parameters() if p.requires_grad
        ]

    # each member's base learning rate and weight decay; all the group's (a grid's seeds and recipes): scalars
    own = [dataclasses.replace(cfg, lr=_or(m.lr, cfg.lr), weight_decay=_or(m.weight_decay, cfg.weight_decay))
           for m in members]  # fmt: skip
    per_member = any((c.lr, c.weight_decay) != (cfg.lr, cfg.weight_decay) for c in own)

    def make_opt() -> SGD:
        stacked: dict[str, Any] = {"params": list(params.values())}
        if per_member:
            stacked["weight_decay"] = torch.tensor([own[k].weight_decay for k in active], device=device)
        groups = [stacked] + [{"params": extra(k), "weight_decay": own[k].weight_decay} for k in active]
        return SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )

    def schedule(epoch: int) -> list[float]:
        """Set this epoch's learning rates (each member's own when they differ); the active members' rates."""
        lr = set_lr(opt, cfg, epoch)
        if not per_member:
            return [lr] * len(active)
        rates = [own[k].lr * own[k].lr_factor(epoch) for k in active]
        opt.param_groups[0]["lr"] = torch.tensor(rates, device=device)
        for group, rate in zip(opt.param_groups[1:], rates, strict=True):
            group["lr"] = rate
        return rates

    opt = make_opt()
    first_epoch, spent_s = 0, 0.0
    saved = load_checkpoint(checkpoint_dir)
    if saved is not None:
        active = list(saved["active"])
        params = {k: v.to(device).requires_grad_() for k, v in saved["params"].items()}
        buffers = {k: v.to(device) for k, v in saved["buffers"].items()}
        for k, m in enumerate(members):
            m.loss.load_state_dict(saved["loss"][k]), m.weighting.load_state_dict(saved["weighting"][k])
            sampler_gens[k].set_state(saved["sampler_gens"][k])
            aug_gens[k].set_state(saved["aug_gens"][k])
            tracks[k].load(saved["tracks"][k])
            if saved["outcomes"][k] is not None:
                outcomes[k] = Diverged(saved["outcomes"][k]["epoch"], math.nan, tracks[k].history)
        opt = make_opt()
        opt.load_state_dict(saved["opt"])
        spent_s, first_epoch = saved["spent_s"], saved["epoch"] + 1
    start = time.perf_counter() - spent_s

    def drop(gone: list[int], old_state: dict[Tensor, Tensor]) -> None:
        """Remove stack positions `gone` (indices into `active`) from parameters, buffers and momentum."""
        nonlocal params, buffers, opt, active
        keep = [i for i in range(len(active)) if i not in gone]
        old = opt.state_dict()
        momentum = old["momentum"][: len(params)]
        params = {k: v.detach()[keep].clone().requires_grad_() for k, v in params.items()}
        buffers = {k: v[keep].clone() for k, v in buffers.items()}
        active = [active[i] for i in keep]
        opt = make_opt()
        for p, buf in zip(params.values(), momentum, strict=True):
            if buf is not None:
                opt.state[p] = buf[keep].clone()
        for k in active:  # the loss/weighting parameters keep their momentum
            for p in extra(k):
                if p in old_state:
                    opt.state[p] = old_state[p]

    for epoch in range(first_epoch, cfg.epochs):
        if not active:
            break
        rates = schedule(epoch)
        for k in active:
            members[k].weighting.on_epoch_start(epoch)
        orders = torch.stack([members[k].sampler.epoch_indices(epoch, sampler_gens[k]) for k in active]).to(
            device
        )
        if cfg.max_steps:  # as in the loop: the first max_steps batches only
            orders = orders[:, : cfg.max_steps * cfg.batch_size]
        totals = torch.zeros(len(active), device=device)
        objective = _Objectives(members, active, device)
        n = orders.shape[1]
        for i in range(0, n, cfg.batch_size):
            idx = orders[:, i : i + cfg.batch_size]  # (K, B)
            xb, yb = x[idx], y[idx]  # (K, B, ...), (K, B)
            if data.augment is not None:
                xb = torch.stack([data.augment(xb[j], generator=aug_gens[k]) for j, k in enumerate(active)])
            with autocast(cfg.precision, device):
                feats, logits = batched(params, buffers, xb)
            objectives = objective(logits, feats, yb)
            opt.zero_grad(set_to_none=True)
            objectives.sum().backward()
            opt.step()
            totals += objectives.detach() * idx.shape[1]
        train_losses = (totals / max(1, n)).tolist()  # the epoch's one host synchronisation
        scored: dict[int, dict[str, dict[str, Any]]] = {}  # stack position -> split -> metrics
        if is_due(cfg, epoch):  # one batched forward per chunk and one batched scoring for all members
            splits = tracks[active[0]].splits
            finite = [j for j in range(len(active)) if math.isfinite(train_losses[j])]
            scales = [members[active[j]].loss.logit_scale for j in finite]
            for s in splits:
                logits = _predict(base, params, buffers, getattr(data, s).x, cfg, device, chain)[finite]
                for j, metrics in zip(
                    finite, evaluator.scores_stacked(logits, getattr(data, s), scales), strict=True
                ):
                    scored.setdefault(j, {})[s] = metrics
        gone: list[int] = []
        for j, k in enumerate(active):
            row: dict[str, Any] = {"epoch": epoch, "lr": rates[j], "train/loss": train_losses[j]}
            track = tracks[k]
            if not math.isfinite(train_losses[j]):
                track.history.append(row)
                outcomes[k] = Diverged(epoch, train_losses[j], track.history)
                gone.append(j)
                continue
            if is_due(cfg, epoch):
                track.evaluated(row, scored[j])
            track.history.append(row)
            if members[k].on_epoch_end is not None:
                try:
                    members[k].on_epoch_end(row)
                except Exception as exc:  # e.g. ClaimLost: this member stops, the others go on
                    outcomes[k] = exc
                    gone.append(j)
        if gone:
            drop(gone, dict(opt.state))
        if checkpoint_dir is not None and cfg.checkpoint_every and (epoch + 1) % cfg.checkpoint_every == 0:
            save_checkpoint(checkpoint_dir, dict(
                active=active, params={k: v.detach() for k, v in params.items()}, buffers=buffers,
                opt=opt.state_dict(), epoch=epoch, spent_s=time.perf_counter() - start,
                loss=[m.loss.state_dict() for m in members], weighting=[m.weighting.state_dict() for m in members],
                sampler_gens=[g.get_state() for g in sampler_gens], aug_gens=[g.get_state() for g in aug_gens],
                tracks=[t.state() for t in tracks],
                outcomes=[{"epoch": o.epoch} if isinstance(o, Diverged) else None for o in outcomes],
            ))  # fmt: skip
    elapsed = time.perf_counter() - start
    for j, k in enumerate(active):
        _copy_member(members[k].model, params, buffers, j)
        metrics = tracks[k].metrics()
        # the group's wall time, shared: per member it is elapsed / members (what it cost)
        metrics["train_time_s"] = elapsed / len(members)
        metrics["peak_mem_mb"] = _peak_memory_mb(device)
        outcomes[k] = FitResult(
            metrics=metrics, history=tracks[k].history, resumed_from=first_epoch - 1 if saved else None,
            execution=execution_record(cfg, device, members[k].model, stacked=len(members)),
        )  # fmt: skip
    return [o if o is not None else RuntimeError("stacked group ended before this member") for o in outcomes]


@torch.inference_mode()
def _predict(
    base: nn.Module,
    params: dict[str, Tensor],
    buffers: dict[str, Tensor],
    x: Tensor,
    cfg: TrainerConfig,
    device: torch.device,
    chain: Any = None,
) -> Tensor:
    """Logits (K, N, C) on the CPU of every stacked member on inputs `x` (N, ...), in eval mode.

    The stacked counterpart of `train.evaluate.predict`: chunks of about `2 * cfg.eval_batch(device)
    / K` inputs, shared by all members (not copied K times, except as a LeNet's channel groups),
    under `cfg.precision`. `chain`: `_chain_forward`'s forward when the members are plain MLPs or
    LeNets (then used instead of vmap).
    """
    base.eval()

    def forward(p: dict[str, Tensor], b: dict[str, Tensor], xb: Tensor) -> Tensor:
        return functional_call(base, (p, b), (xb,))[1]

    batched = (
        vmap(forward, in_dims=(0, 0, None))
        if chain is None
        else (lambda p, b, xb: chain(p, xb, shared=True)[1])
    )
    p = {k: v.detach() for k, v in params.items()}
    out = []
    with autocast(cfg.precision, device):
        # K members' activations per chunk: chunks of about 2 / K evaluation batches keep them in cache
        # (measured: stacked LeNets x10 score ~2x the images/s in chunks of 64 than of 256 on a CPU)
        k = next(iter(p.values())).shape[0]
        step = max(16, 2 * cfg.eval_batch(device) // k)
        for i in range(0, len(x), step):
            out.append(batched(p, buffers, x[i : i + step].to(device)).float().cpu())
    base.train()
    return torch.cat(out, dim=1)


@torch.no_grad()
def _copy_member(model: nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor], j: int) -> None:
    """Copy stack position `j` of the stacked parameters and buffers into `model`."""
    state = model.state_dict()
    for name, value in (*params.items(), *buffers.items()):
        state[name.removeprefix("model.")].copy_(value[j])
