"""The contract every component meets, as checks that run on any option, built-in or the user's.

`lossbench check loss=focal` and the project's parametrized tests (`tests/test_contracts.py`) call
`check(group, name)`, so there is one definition of the contract. Each group has its checks:

- loss: per-example losses (N,) in the logits' dtype, finite, non-negative, gradient to the logits,
  no reduction across the batch, permutation equivariance, float32/float64 agreement, finite on
  extreme logits, any number of classes, and the class's declared `limits` (`lossbench.limits`).
- weighting: a finite scalar with a gradient, permutation invariance, constant losses `c` map to `c`,
  float32/float64 agreement, declared limits.
- sampler: int64 indices of one epoch (length N) in range, determined by the generator, never
  an empty class.
- dataset: builds a `DataSpec` whose splits are finite float inputs and int64 labels in [0, C).
- model: a `Classifier` mapping (N, *input_shape) to finite logits (N, C) = head(features), with a
  gradient to every parameter, permutation equivariance (eval mode), float32/float64 agreement.
- stage2: applied after a short stage 1 on tiny data, the final model still gives finite logits.

Any other group (a new one) gets the `builds` check. Components are built from their YAML exactly as
`lossbench run` builds them, and `fit_component` is the one place that shows them training statistics.
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor

from lossbench.config import check_option, compose, option_file, user_config_dirs, user_options
from lossbench.data.spec import DataSpec, Split
from lossbench.limits import Limit
from lossbench.tasks.base import CLASSIFICATION, prepare
from lossbench.tasks.classification import ClassificationTask
from lossbench.tasks.compatible import RECIPE_GROUPS, kinds_of

COUNTS = (50, 20, 5)  # long-tailed training counts the components are fitted to
SAMPLER_COUNTS = (60, 20, 6, 2, 0, 12)  # one empty class on purpose
MODEL_INPUT = (3, 16, 16)  # a small image: image models need one, flat models flatten it
# Settings every option is composed with (interpolations such as ${trainer.epochs} resolve to these).
BASE_OVERRIDES = ("trainer=smoke", "trainer.epochs=10", "store=memory")


@dataclass
class Subject:
    """What a check looks at: option `name` of `group`, built once as `component`."""

    group: str
    name: str
    component: Any
    input_shape: tuple[int, ...] = MODEL_INPUT  # a model's input shape


class ContractError(ValueError):
    """A component cannot be built or breaks its contract; the message is one line."""


@dataclass(frozen=True)
class Outcome:
    """The result of one check: its name, whether it passed, and why not."""

    check: str
    passed: bool
    detail: str = ""


def fit_component(group: str, component: Any, data: DataSpec) -> None:
    """Show `component` the training statistics of `data`, as `run.py` does before training.

    The one place the checker fits a component (`tasks.base.prepare`, the one `fit(task, targets)`
    of losses, weightings, samplers and second stages).
    """
    if group in RECIPE_GROUPS:
        prepare(data.task, data.train.y, component)


def tiny_data(
    class_counts: Sequence[int] = COUNTS, input_shape: Sequence[int] = (4,), seed: int = 0
) -> DataSpec:
    """A small Gaussian `DataSpec` with the given training counts and 5 val/test examples per class."""
    g = torch.Generator().manual_seed(seed)
    num_classes = len(class_counts)

    def split(counts: Sequence[int]) -> Split:
        y = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(counts)])
        means = torch.randn(num_classes, *input_shape, generator=torch.Generator().manual_seed(seed))
        return Split(x=means[y] * 2 + torch.randn(len(y), *input_shape, generator=g), y=y)

    return DataSpec(name="tiny", train=split(class_counts), val=split([5] * num_classes),
                    test=split([5] * num_classes), task=ClassificationTask(tuple(int(n) for n in class_counts)),
                    input_shape=tuple(input_shape))  # fmt: skip


def where(group: str, name: str) -> str:
    """`loss 'my_loss' (path/to/loss/my_loss.yaml)` for the user's options, `loss 'focal'` for built-ins."""
    mine = user_options(group)
    return f"{group} {name!r}" + (f" ({mine[name]})" if name in mine else "")


def build(group: str, name: str, params: dict[str, Any] | None = None, **runtime: Any) -> Any:
    """Option `name` of `group` built from its YAML as `lossbench run` builds it (not yet fitted).

    `params` override YAML values; `runtime` are the arguments `run.py` passes (a model's
    `input_shape` and `num_classes`). Raises `ContractError` naming the file and the problem:
    a module that does not import, a missing class, a constructor that rejects the YAML's parameters.
    """
    check_option(group, name)
    node = OmegaConf.create(_composed(group, name, tuple(user_config_dirs())))
    yaml = option_file(group, name)
    for key, value in (params or {}).items():
        if key not in node:
            raise ContractError(f"{yaml}: {group} {name!r} has no parameter {key!r}")
        node[key] = value
    target = str(node.get("_target_", ""))
    _locate(target, yaml)
    try:
        return instantiate(
            OmegaConf.create(OmegaConf.to_container(node, resolve=True)), _convert_="all", **runtime
        )
    except Exception as exc:
        cause = exc.__cause__ or exc
        raise ContractError(f"{yaml}: {target}(...) failed: {type(cause).__name__}: {cause}") from exc


@functools.lru_cache(maxsize=256)
def _composed(group: str, name: str, user_dirs: tuple[Path, ...]) -> dict[str, Any]:
    """The resolved YAML node of an option (composed once per process and search path)."""
    return OmegaConf.to_container(compose([*BASE_OVERRIDES, f"{group}={name}"])[group], resolve=True)  # type: ignore[return-value]


def _locate(target: str, yaml: Path) -> None:
    """Import the `_target_` of `yaml`; a one-line `ContractError` if the module or class is missing."""
    if not target:
        raise ContractError(f"{yaml}: no _target_ (the class or function that builds the option)")
    module_name, _, attr = target.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ContractError(
                f"{yaml}: _target_ {target!r}: no module named {exc.name!r}; put {exc.name.replace('.', '/')}.py "
                "in the working directory or on PYTHONPATH"
            ) from exc
        raise ContractError(
            f"{yaml}: _target_ {target!r}: importing {module_name} failed at {_site(exc)}: {exc}"
        ) from exc
    except Exception as exc:
        raise ContractError(
            f"{yaml}: _target_ {target!r}: importing {module_name} failed at {_site(exc)}: {type(exc).__name__}: {exc}"
        ) from exc
    if not hasattr(module, attr):
        found = getattr(module, "__file__", module_name)
        raise ContractError(f"{yaml}: _target_ {target!r}: {found} has no {attr!r}")


def _site(exc: BaseException) -> str:
    """`file:line` where an import failed (the user's file, not importlib's frames)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "import"


def check(
    group: str, name: str, stop_early: bool = False, input_shape: Sequence[int] = MODEL_INPUT
) -> list[Outcome]:
    """Run every check of `group` on option `name`; the outcomes in order.

    The first check, `builds`, builds the option; if it fails, nothing else runs. With
    `stop_early`, checking stops at the first failure (preflight). Models are checked on inputs
    of `input_shape` (default: a 32x32 RGB image, which flat models flatten).
    """
    shape = tuple(int(d) for d in input_shape)
    try:
        component = build(group, name, **_runtime(group, shape, name))
    except ContractError as exc:
        return [Outcome("builds", False, str(exc))]
    outcomes = [Outcome("builds", True)]
    if group in RECIPE_GROUPS and CLASSIFICATION not in kinds_of(component):
        kinds = ", ".join(kinds_of(component))
        return [*outcomes, Outcome("classification contract", True, f"skipped: supports {kinds} only")]
    subject = Subject(group, name, component, shape)
    for check_name, fn in CHECKS.get(group, {}).items():
        try:
            fn(subject)
            outcomes.append(Outcome(check_name, True))
        except Exception as exc:
            outcomes.append(Outcome(check_name, False, _reason(exc)))
            if stop_early:
                break
    for limit in getattr(type(component), "limits", ()):
        try:
            _check_limit(group, name, limit)
            outcomes.append(Outcome(f"limit: {limit.describe()}", True))
        except Exception as exc:
            outcomes.append(Outcome(f"limit: {limit.describe()}", False, _reason(exc)))
    return outcomes


def _reason(exc: BaseException) -> str:
    """A failed check's reason: the message of a contract assertion, else the exception and its message."""
    return str(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"


def first_failure(group: str, name: str, input_shape: Sequence[int] = MODEL_INPUT) -> str | None:
    """One line saying how option `name` breaks its contract, or None if it passes (preflight)."""
    failed = next((o for o in check(group, name, True, input_shape) if not o.passed), None)
    if failed is None:
        return None
    if failed.check == "builds":
        return f"{group} {name!r}: {failed.detail}"
    source = source_of(build(group, name, **_runtime(group, input_shape, name)))
    return f"{where(group, name)}, defined in {source}, fails the {failed.check!r} check: {failed.detail}"


def _runtime(group: str, input_shape: Sequence[int] = MODEL_INPUT, name: str | None = None) -> dict[str, Any]:
    """What `run.py` passes a model: its input shape and output width.

    A multi-task model (its constructor takes `head_widths`) gets the width split into two heads.
    """
    if group != "model":
        return {}
    runtime: dict[str, Any] = {"input_shape": list(input_shape), "num_classes": len(COUNTS)}
    if name is not None and _takes(group, name, "head_widths"):
        runtime["head_widths"] = [len(COUNTS) - 1, 1]
    return runtime


def _takes(group: str, name: str, parameter: str) -> bool:
    """Whether the constructor named by option `name`'s `_target_` has `parameter` (False if it cannot tell)."""
    try:
        target = str(OmegaConf.create(_composed(group, name, tuple(user_config_dirs()))).get("_target_", ""))
        module, _, attr = target.rpartition(".")
        return parameter in inspect.signature(getattr(importlib.import_module(module), attr)).parameters
    except Exception:  # noqa: BLE001  (a broken option is reported by the `builds` check)
        return False


def _fitted(
    group: str, name: str, params: dict[str, Any] | None = None, counts: Sequence[int] = COUNTS
) -> Any:
    component = build(group, name, params, **_runtime(group, name=name))
    fit_component(group, component, tiny_data(counts))
    if group == "weighting":
        component.on_epoch_start(10_000)  # deferred recipes (drw) switch on
    return component


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _close(a: Tensor, b: Tensor, what: str, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    try:
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, check_dtype=False)
    except AssertionError as exc:
        raise AssertionError(f"{what}: {str(exc).splitlines()[0]}") from None


def _batch(
    n: int = 8, c: int = 3, dtype: torch.dtype = torch.float32, seed: int = 0
) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g, dtype=dtype) * 3, torch.randint(0, c, (n,), generator=g)


# --- loss -------------------------------------------------------------------------------------------


def _loss_outputs(s: Subject) -> None:
    from lossbench.losses.base import Loss

    loss = _fitted(s.group, s.name)
    _require(isinstance(loss, Loss), f"{type(loss).__name__} is not a lossbench.losses.Loss")
    logits, y = _batch()
    logits.requires_grad_(True)
    out = loss(logits, y)
    _require(isinstance(out, Tensor), f"forward returned {type(out).__name__}, not a Tensor")
    _require(
        out.shape == (8,), f"logits (8, 3) gave shape {tuple(out.shape)}, expected per-example losses (8,)"
    )
    _require(out.dtype == logits.dtype, f"float32 logits gave {out.dtype}, expected float32")
    _require(bool(torch.isfinite(out).all()), f"non-finite losses on ordinary logits: {out.tolist()}")
    _require(bool((out >= 0).all()), f"negative losses: {out.tolist()}")
    _require(out.requires_grad, "the losses do not depend on the logits (no gradient)")
    out.sum().backward()
    grad = logits.grad
    _require(grad is not None and bool(grad.abs().sum() > 0), "no gradient reaches the logits")
    _require(bool(torch.isfinite(grad).all()), "non-finite gradient")  # type: ignore[arg-type]


def _loss_no_reduction(s: Subject) -> None:
    loss = _fitted(s.group, s.name)
    logits, y = _batch(16)
    _close(
        loss(logits[:5], y[:5]),
        loss(logits, y)[:5],
        "the loss of an example depends on the rest of the batch",
    )


def _loss_permutation(s: Subject) -> None:
    loss = _fitted(s.group, s.name)
    logits, y = _batch(16)
    p = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    _close(loss(logits[p], y[p]), loss(logits, y)[p], "loss(x[p], y[p]) != loss(x, y)[p]")


def _loss_float64(s: Subject) -> None:
    loss = _fitted(s.group, s.name)
    logits, y = _batch()
    out = loss(logits.double(), y)
    _require(out.dtype == torch.float64, f"float64 logits gave {out.dtype}")
    _close(loss(logits, y).double(), out, "float32 and float64 disagree")


def _loss_extreme(s: Subject) -> None:
    loss = _fitted(s.group, s.name)
    out = loss(torch.tensor([[80.0, -80.0, 0.0], [-80.0, 80.0, 0.0]]), torch.tensor([0, 2]))
    _require(bool(torch.isfinite(out).all()), f"non-finite losses on logits of +-80: {out.tolist()}")


def _loss_any_classes(s: Subject) -> None:
    for counts in ((7, 3), (90, 50, 30, 20, 12, 8, 5, 3, 2, 1)):
        loss = _fitted(s.group, s.name, counts=counts)
        logits, y = _batch(32, len(counts))
        out = loss(logits, y)
        _require(out.shape == (32,), f"{len(counts)} classes: shape {tuple(out.shape)}")
        _require(bool(torch.isfinite(out).all() & (out >= 0).all()), f"{len(counts)} classes: {out.tolist()}")


# --- weighting --------------------------------------------------------------------------------------


def _weighting_inputs(
    n: int = 12, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    losses = (torch.rand(n, generator=g) * 3).to(dtype)
    y = torch.randint(0, len(COUNTS), (n,), generator=g)
    return (
        losses,
        y,
        torch.randn(n, len(COUNTS), generator=g).to(dtype),
        torch.randn(n, 4, generator=g).to(dtype),
    )


def _weighting_outputs(s: Subject) -> None:
    from lossbench.weighting.base import Weighting

    w = _fitted(s.group, s.name)
    _require(isinstance(w, Weighting), f"{type(w).__name__} is not a lossbench.weighting.Weighting")
    losses, y, logits, feats = _weighting_inputs()
    losses.requires_grad_(True)
    out = w(losses, y, logits, feats)
    _require(
        isinstance(out, Tensor) and out.shape == (), f"expected a scalar, got {getattr(out, 'shape', out)}"
    )
    _require(bool(torch.isfinite(out)), f"non-finite objective {out.item()}")
    _require(out.requires_grad, "the objective does not depend on the losses (no gradient)")
    out.backward()
    _require(losses.grad is not None and bool(losses.grad.abs().sum() > 0), "no gradient reaches the losses")


def _weighting_permutation(s: Subject) -> None:
    w = _fitted(s.group, s.name)
    losses, y, logits, feats = _weighting_inputs()
    p = torch.randperm(12, generator=torch.Generator().manual_seed(1))
    _close(
        w(losses[p], y[p], logits[p], feats[p]), w(losses, y, logits, feats), "the order of the batch matters"
    )


def _weighting_constant(s: Subject) -> None:
    w = _fitted(s.group, s.name)
    _, y, logits, feats = _weighting_inputs()
    out = w(torch.full((12,), 2.5), y, logits, feats)
    _close(out, torch.tensor(2.5), "constant losses 2.5 do not map to 2.5 (weights not normalised)")


def _weighting_float64(s: Subject) -> None:
    w = _fitted(s.group, s.name)
    single, double = _weighting_inputs(), _weighting_inputs(dtype=torch.float64)
    _close(w(*single).double(), w(*double), "float32 and float64 disagree")


def _weighting_rows(s: Subject) -> None:
    from lossbench.weighting.base import reduces_rows

    w = _fitted(s.group, s.name)
    if not reduces_rows(w):  # stacked members call it one batch at a time
        return
    losses, y, logits, feats = _weighting_inputs()
    losses, y = torch.stack([losses, losses.flip(0)]), torch.stack([y, y])  # two batches, unequal objectives
    for epoch in (0, 10_000):  # deferred recipes: before and after they switch on
        w.on_epoch_start(epoch)
        want = torch.stack([w(losses[k], y[k], logits, feats) for k in range(2)])
        _close(w.forward_rows(losses, y), want, f"epoch {epoch}: forward_rows(...)[k] != forward(row k)")


# --- sampler ----------------------------------------------------------------------------------------


def _sampler_indices(s: Subject) -> None:
    from lossbench.samplers.base import Sampler

    sampler = _fitted(s.group, s.name, counts=SAMPLER_COUNTS)
    _require(isinstance(sampler, Sampler), f"{type(sampler).__name__} is not a lossbench.samplers.Sampler")
    y, n = tiny_data(SAMPLER_COUNTS).train.y, sum(SAMPLER_COUNTS)
    for epoch in (0, 5, 9):
        idx = sampler.epoch_indices(epoch, torch.Generator().manual_seed(0))
        _require(
            isinstance(idx, Tensor) and idx.dtype == torch.int64, f"epoch {epoch}: indices must be int64"
        )
        _require(idx.shape == (n,), f"epoch {epoch}: {tuple(idx.shape)} indices, expected one epoch ({n},)")
        _require(bool(idx.min() >= 0) and bool(idx.max() < n), f"epoch {epoch}: indices out of range(N)")
        _require(not bool((y[idx] == 4).any()), f"epoch {epoch}: draws examples of an empty class")


def _sampler_generator(s: Subject) -> None:
    a, b = _fitted(s.group, s.name, counts=SAMPLER_COUNTS), _fitted(s.group, s.name, counts=SAMPLER_COUNTS)
    for epoch in (0, 9):
        x = a.epoch_indices(epoch, torch.Generator().manual_seed(7))
        _require(
            torch.equal(x, b.epoch_indices(epoch, torch.Generator().manual_seed(7))), "same seed, other order"
        )
        _require(
            not torch.equal(x, a.epoch_indices(epoch, torch.Generator().manual_seed(8))),
            "ignores the generator",
        )


# --- dataset ----------------------------------------------------------------------------------------


def _dataset_loads(s: Subject) -> None:
    from lossbench.data.base import Dataset

    dataset = s.component
    _require(isinstance(dataset, Dataset), f"{type(dataset).__name__} is not a lossbench.data.base.Dataset")
    data = dataset.load()
    _require(isinstance(data, DataSpec), f"load() returned {type(data).__name__}, not a DataSpec")
    for split in ("train", "val", "test"):
        part = getattr(data, split)
        _require(
            part.x.is_floating_point() and bool(torch.isfinite(part.x).all()),
            f"{split}.x must be finite floats",
        )
        _require(tuple(part.x.shape[1:]) == tuple(data.input_shape), f"{split}.x rows are not input_shape")
        if data.task.kind != CLASSIFICATION:  # regression targets: finite floats
            _require(bool(torch.isfinite(part.y.float()).all()), f"{split}.y must be finite")
            continue
        _require(part.y.dtype == torch.int64, f"{split}.y must be int64, got {part.y.dtype}")
        _require(
            len(part) == 0 or bool((part.y >= 0).all() & (part.y < data.task.output_width).all()),
            f"{split}.y outside [0, C)",
        )


# --- model ------------------------------------------------------------------------------------------


def _model_outputs(s: Subject) -> None:
    from lossbench.models.base import Classifier

    model = s.component
    _require(
        isinstance(model, Classifier), f"{type(model).__name__} is not a lossbench.models.base.Classifier"
    )
    model.eval()  # dropout off, so forward(x) and head(features(x)) are the same function; gradients still flow
    x = torch.randn(2, *s.input_shape, generator=torch.Generator().manual_seed(0))
    logits = model(x)
    _require(
        logits.shape == (2, len(COUNTS)),
        f"inputs {(2, *s.input_shape)} gave {tuple(logits.shape)}, expected (2, C)",
    )
    _require(
        logits.dtype == torch.float32 and bool(torch.isfinite(logits).all()), "logits must be finite float32"
    )
    features = model.features(x)
    _require(
        features.ndim == 2 and len(features) == 2, f"features must be (N, D), got {tuple(features.shape)}"
    )
    _close(model.head(features), logits, "forward(x) != head(features(x))")
    model.zero_grad()
    logits.square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    _require(not missing, f"no gradient reaches {', '.join(missing[:3])}")


def _model_permutation(s: Subject) -> None:
    model = s.component
    model.eval()
    x = torch.randn(3, *s.input_shape, generator=torch.Generator().manual_seed(0))
    p = torch.randperm(3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _close(model(x[p]), model(x)[p], "model(x[p]) != model(x)[p] in eval mode")


def _model_float64(s: Subject) -> None:
    model = s.component
    model.eval()
    x = torch.randn(2, *s.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        single = model(x)
        double = copy.deepcopy(model).double()(x.double())
    _close(single.double(), double, "float32 and float64 disagree", rtol=1e-3, atol=1e-4)


# --- stage2 -----------------------------------------------------------------------------------------


def _stage2_applies(s: Subject) -> None:
    from lossbench.losses.cross_entropy import CrossEntropyLoss
    from lossbench.samplers.instance import InstanceSampler
    from lossbench.stage2.base import Stage2
    from lossbench.train.config import TrainerConfig
    from lossbench.train.evaluate import Evaluator
    from lossbench.train.loop import fit
    from lossbench.weighting.none import NoWeighting

    stage2 = s.component
    _require(isinstance(stage2, Stage2), f"{type(stage2).__name__} is not a lossbench.stage2.base.Stage2")
    data = tiny_data()
    cfg = compose([*BASE_OVERRIDES, "trainer.epochs=2", "model=mlp", "model.hidden=[8]"])
    trainer = TrainerConfig(**OmegaConf.to_container(cfg.trainer, resolve=True))  # type: ignore[arg-type]
    torch.manual_seed(0)
    model = instantiate(cfg.model, input_shape=list(data.input_shape), num_classes=data.task.output_width)
    loss, weighting, sampler = CrossEntropyLoss(), NoWeighting(), InstanceSampler()
    for component_group, component in (("loss", loss), ("weighting", weighting), ("sampler", sampler)):
        fit_component(component_group, component, data)
    fit_component("stage2", stage2, data)
    evaluator = Evaluator.of(data, trainer, torch.device("cpu"))
    stage1 = fit(model, loss, weighting, sampler, data, trainer, seed=0, evaluator=evaluator)
    result = stage2.run(model, data, trainer, 0, stage1=stage1, evaluator=evaluator)
    acc = result.metrics.get("last/test/acc")
    _require(acc is not None and 0.0 <= float(acc) <= 1.0, f"no valid last/test/acc after stage 2 ({acc})")
    model.eval()
    with torch.no_grad():
        logits = model(data.test.x)
    _require(
        logits.shape == (len(data.test), data.task.output_width), f"final model gives {tuple(logits.shape)}"
    )
    _require(bool(torch.isfinite(logits).all()), "final model gives non-finite logits")


# --- limits -----------------------------------------------------------------------------------------


def _check_limit(group: str, name: str, limit: Limit) -> None:
    counts = limit.class_counts or COUNTS
    this, that = _fitted(group, name, dict(limit.params), counts), _fitted(group, limit.equals, None, counts)
    if group == "loss":
        logits, y = _batch(32, len(counts))
        _close(this(logits, y), that(logits, y), f"{name} with {dict(limit.params)} != {limit.equals}")
    elif group == "weighting":
        args = _weighting_inputs()
        _close(this(*args), that(*args), f"{name} with {dict(limit.params)} != {limit.equals}")
    else:  # a declared limit nothing can verify is a broken declaration, not a pass
        _require(
            False, f"{group} {name!r} declares limits, but limits are defined for losses and weightings only"
        )


Check = Callable[[Subject], None]
CHECKS: dict[str, dict[str, Check]] = {
    "loss": {
        "per-example losses: shape, dtype, finite, non-negative, gradient": _loss_outputs,
        "no reduction across the batch": _loss_no_reduction,
        "permutation equivariance": _loss_permutation,
        "float32/float64 agreement": _loss_float64,
        "finite on extreme logits": _loss_extreme,
        "any number of classes": _loss_any_classes,
    },
    "weighting": {
        "finite scalar with a gradient": _weighting_outputs,
        "permutation invariance": _weighting_permutation,
        "constant losses map to the constant": _weighting_constant,
        "float32/float64 agreement": _weighting_float64,
        "rows of a stacked batch reduce as one by one": _weighting_rows,
    },
    "sampler": {
        "one epoch of int64 indices in range, no empty class": _sampler_indices,
        "determined by the generator": _sampler_generator,
    },
    "dataset": {"loads a valid DataSpec": _dataset_loads},
    "model": {
        "finite logits (N, C) = head(features), gradient to every parameter": _model_outputs,
        "permutation equivariance (eval mode)": _model_permutation,
        "float32/float64 agreement": _model_float64,
    },
    "stage2": {"applies after a short stage 1; finite final logits": _stage2_applies},
}


def source_of(component: Any) -> str:
    """The file that defines a component's class (for messages)."""
    try:
        return str(inspect.getsourcefile(type(component)))
    except TypeError:
        return type(component).__module__
