import importlib
import inspect
import itertools
import os
import pkgutil

import pytest
import torch
import yaml
from hydra.utils import get_class, get_method
from omegaconf import OmegaConf

import lossbench
from lossbench.config import CONFIG_DIR, GROUPS, compose, describe, options
from lossbench.losses.base import Loss
from lossbench.samplers.base import Sampler
from lossbench.task_weighting.base import TaskWeighting
from lossbench.weighting.base import Weighting


def all_targets():
    out = []
    for path in sorted(CONFIG_DIR.rglob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        if "_target_" in data:
            out.append((path.relative_to(CONFIG_DIR).as_posix(), data["_target_"]))
    return out


@pytest.mark.parametrize(("path", "target"), all_targets())
def test_every_target_imports(path, target):
    try:
        get_class(target)
    except Exception:
        get_method(target)


from lossbench.groups import COMPONENT_GROUPS  # noqa: E402


@pytest.mark.parametrize(("group", "name"), [(g, n) for g in COMPONENT_GROUPS for n in options(g)])
def test_every_option_composes_and_resolves(group, name):
    # composing one option at a time keeps this linear in the number of options (a full product of the
    # groups would be tens of thousands of compositions); resolving checks the cross-group
    # interpolations (drw -> trainer.epochs, posthoc_la -> loss.s, stage2 -> model.head, ...)
    resolved = OmegaConf.to_container(compose([f"{group}={name}"]), resolve=True)
    assert resolved[group]["_target_"]


@pytest.mark.slow
def test_every_loss_weighting_stage2_combination_composes():
    for loss, weighting, stage2 in itertools.product(*(options(g) for g in ("loss", "weighting", "stage2"))):
        cfg = compose([f"loss={loss}", f"weighting={weighting}", f"stage2={stage2}"])
        OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize(
    ("loss", "model"), [(lo, m) for lo in options("loss_model") for m in options("model")]
)
def test_loss_model_settings_compose_with_every_model(loss, model):
    # `optional loss_model: ${loss}` is the one place where groups change each other's composed config
    cfg = OmegaConf.to_container(compose([f"loss={loss}", f"model={model}"]), resolve=True)
    assert cfg["model"]["_target_"] and cfg["loss"]["_target_"]


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_has_a_description(group):
    for name in options(group):
        assert describe(group, name), f"configs/{group}/{name}.yaml needs a leading '# description' line"


def _subclasses(base):
    for mod in pkgutil.walk_packages(lossbench.__path__, "lossbench."):
        importlib.import_module(mod.name)
    seen, todo = set(), [base]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
    return {c for c in seen if not inspect.isabstract(c)}


@pytest.mark.parametrize("base", [Loss, Weighting, TaskWeighting, Sampler])
def test_no_orphan_components(base):
    named = {t for _, t in all_targets()}
    orphans = [
        f"{c.__module__}.{c.__qualname__}" for c in _subclasses(base) if c.__module__.startswith("lossbench")
    ]
    orphans = [o for o in orphans if o not in named]
    assert not orphans, f"components no config names: {orphans}"


def test_typo_in_trainer_key_fails_at_composition():
    with pytest.raises(Exception, match="epohcs"):
        compose(["trainer.epohcs=3"])


def test_typo_in_store_key_fails_at_composition():
    with pytest.raises(Exception, match="ulr"):
        compose(["store.ulr=sqlite://"])


def test_ldam_gets_the_cosine_head_unless_overridden():
    assert compose(["loss=ldam"]).model.head == "normed"
    assert compose(["loss=ce"]).model.head == "linear"
    assert compose(["loss=ldam", "model.head=linear"]).model.head == "linear"


def test_interface_keys_exist():
    cfg = compose()
    for key in ("trainer.epochs", "trainer.batch_size", "trainer.lr", "dataset.imbalance_ratio", "dataset.profile",
                "store.url", "seed"):  # fmt: skip
        node = cfg
        for part in key.split("."):
            node = node[part]
        assert node is not None


@pytest.fixture
def uncached_hydra():
    """Hydra's own `ConfigRepository.load_config`, without lossbench's per-process cache of config files."""
    from hydra._internal.config_repository import ConfigRepository

    cached = ConfigRepository.load_config
    ConfigRepository.load_config = cached.__wrapped__
    yield
    ConfigRepository.load_config = cached


# presets of each kind: single-label with recipes, regression, multi-task, label noise
EXPERIMENTS = ["ldam_drw", "imbalanced_regression", "multi_fashion", "label_noise_cpu"]


def _composed(overrides):
    from lossbench.config import compose_with_hydra

    cfg = compose_with_hydra(overrides)
    return OmegaConf.to_yaml(cfg, resolve=False), OmegaConf.to_yaml(cfg.hydra.runtime.choices)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_cached_config_files_compose_the_same_configs(experiment, request):
    # the cache hands out copies: composing twice with it, then without it, gives the same config and choices
    overrides = [f"experiment={experiment}", "loss=focal", "loss.gamma=2", "seed=3"]
    with_cache = [_composed(overrides), _composed(overrides)]
    request.getfixturevalue("uncached_hydra")
    assert with_cache[0] == with_cache[1] == _composed(overrides)


def test_cached_config_files_see_an_edited_file(tmp_path):
    from lossbench.config import use_config_dirs

    (tmp_path / "loss").mkdir()
    option = tmp_path / "loss" / "my_loss.yaml"
    option.write_text("_target_: lossbench.losses.label_smoothing.LabelSmoothingLoss\nepsilon: 0.1\n")
    try:
        use_config_dirs(["--config-dir", str(tmp_path)])
        assert compose(["loss=my_loss"]).loss.epsilon == 0.1
        option.write_text("_target_: lossbench.losses.label_smoothing.LabelSmoothingLoss\nepsilon: 0.2\n")
        stat = option.stat()  # a new modification time even on a coarse clock
        os.utime(option, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        assert compose(["loss=my_loss"]).loss.epsilon == 0.2
    finally:
        use_config_dirs([])


def _plain_state(obj):
    """What an instantiated component holds: its type, plain attributes and (for modules) its tensors."""
    plain = (int, float, str, bool, type(None), list, tuple, dict)
    attrs = {k: v for k, v in vars(obj).items() if isinstance(v, plain) and not k.startswith("_")}
    tensors = {k: v for k, v in obj.state_dict().items()} if isinstance(obj, torch.nn.Module) else {}
    return type(obj), attrs, tensors


@pytest.mark.parametrize(("group", "name"), [(g, n) for g in COMPONENT_GROUPS for n in options(g)])
def test_runs_build_every_option_as_hydra_instantiate_does(group, name):
    """A run builds plain nodes by calling their class (`run._instantiate`): the same object as Hydra's instantiate."""
    from hydra.utils import instantiate

    from lossbench import run

    node = compose([f"{group}={name}"])[group]
    values = OmegaConf.to_container(node, resolve=True)
    if not run._plain(values):
        pytest.skip(f"{group}={name} is built by Hydra's instantiate itself")
    extra = {"input_shape": [3, 32, 32], "num_classes": 10} if group == "model" else {}
    if group == "model" and "multitask" in str(values["_target_"]).lower():
        extra = {"input_shape": [1, 36, 36], "num_classes": 20, "head_widths": [10, 10]}
    torch.manual_seed(0)
    try:
        ours = run._instantiate(values, extra)
    except Exception as exc:  # noqa: BLE001  (then Hydra's must fail alike)
        with pytest.raises(Exception) as info:
            instantiate(node, _convert_="all", **extra)
        assert str(exc) in str(info.value.__cause__ or info.value)
        return
    torch.manual_seed(0)
    theirs = instantiate(node, _convert_="all", **extra)
    a, b = _plain_state(ours), _plain_state(theirs)
    assert a[0] is b[0] and a[1] == b[1] and a[2].keys() == b[2].keys()
    assert all(torch.equal(a[2][k], b[2][k]) for k in a[2])
