import copy
import dataclasses
import math

import pytest
import sqlalchemy as sa
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from lossbench import cli, run
from lossbench.config import compose, options
from lossbench.data.spec import Split
from lossbench.losses.cross_entropy import CrossEntropyLoss
from lossbench.models.heads import NormedLinear
from lossbench.samplers.instance import InstanceSampler
from lossbench.stage2.base import Stage2
from lossbench.stage2.crt import ClassifierRetraining
from lossbench.stage2.posthoc_la import PosthocLogitAdjustment
from lossbench.stage2.tau_norm import TAU_GRID, TauNormalization, tau_normalized
from lossbench.stage2.weight_balancing import WeightBalancing, maxnorm_radius, project_maxnorm
from lossbench.store.db import Store, runs
from lossbench.tasks.base import prepare
from lossbench.train.config import TrainerConfig
from lossbench.train.evaluate import Evaluator
from lossbench.train.loop import Diverged, fit
from lossbench.weighting.none import NoWeighting
from tests.conftest import SMALL, small_cfg
from tests.test_configs import _subclasses, all_targets

STAGE2 = options("stage2")


@pytest.fixture(scope="module")
def trained():
    """A small model after a 2-epoch stage 1 on the small synthetic data, its data and trainer."""
    cfg = compose(SMALL)
    data = instantiate(cfg.dataset).load()
    trainer = TrainerConfig(**OmegaConf.to_container(cfg.trainer, resolve=True))
    torch.manual_seed(0)
    model = instantiate(cfg.model, input_shape=list(data.input_shape), num_classes=data.num_classes)
    loss, sampler, weighting = CrossEntropyLoss(), InstanceSampler(), NoWeighting()
    prepare(data.task, data.train.y, loss, weighting, sampler)
    stage1 = fit(model, loss, weighting, sampler, data, trainer, seed=0)
    return model, data, trainer, stage1


def ev(data, trainer):
    return Evaluator.of(data, trainer, torch.device("cpu"))


def fresh(trained):
    model, data, trainer, stage1 = trained
    return copy.deepcopy(model), data, trainer, stage1


def logits_of(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("name", STAGE2)
def test_one_tiny_run_per_stage2_writes_the_final_metrics(name, tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    extra = ["stage2.epochs=2"] if "epochs" in compose([f"stage2={name}"]).stage2 else []
    cfg, choices = small_cfg([f"stage2={name}", *extra], store_url=url)
    assert run.run_cell(cfg, choices) == "completed"
    store = Store(url)
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(runs)).mappings().one()
    metrics = row["metrics"]
    assert row["labels"]["stage2"] == name and row["config"]["stage2"]["_target_"]
    assert 0 <= metrics["last/test/acc"] <= 1 and 0 <= metrics["last/val/acc"] <= 1
    history = store.history_of(row["run_id"])
    if name == "none":
        assert not any(k.startswith("stage1/") for k in metrics) and len(history) == 2
    else:
        assert metrics["stage1/last/test/acc"] is not None  # the stage-1 model's metrics are kept apart
        stage2_rows = [h for h in history if h.get("stage") == 2]
        assert [h["epoch"] for h in history] == list(range(len(history)))
        assert len(stage2_rows) == (2 if extra else 0)


def test_final_metrics_are_those_of_the_adjusted_model(trained):
    model, data, trainer, stage1 = fresh(trained)
    result = PosthocLogitAdjustment(tau=1.0).run(
        model, data, trainer, 0, stage1=stage1, evaluator=ev(data, trainer)
    )
    logits = logits_of(model, data.test.x)
    acc = (logits.argmax(1) == data.test.y).double().mean().item()
    assert result.metrics["last/test/acc"] == pytest.approx(acc)
    assert result.metrics["stage1/last/test/acc"] == stage1.metrics["last/test/acc"]
    assert "best/test/acc" not in result.metrics  # stage-1 best epoch was never adjusted


def test_posthoc_la_with_tau_zero_changes_nothing(trained):
    model, data, trainer, stage1 = fresh(trained)
    before = logits_of(model, data.test.x)
    PosthocLogitAdjustment(tau=0.0).apply(model, data, trainer, 0, ev(data, trainer))
    torch.testing.assert_close(logits_of(model, data.test.x), before)


def test_posthoc_la_subtracts_tau_log_prior_on_the_loss_scale(trained):
    model, data, trainer, stage1 = fresh(trained)
    before = logits_of(model, data.test.x)
    counts = torch.tensor(data.class_counts, dtype=torch.float64)  # (40, 22, 12, 7, 4)
    log_prior = (counts / counts.sum()).log().float()
    PosthocLogitAdjustment(tau=1.5, logit_scale=30.0).apply(model, data, trainer, 0, ev(data, trainer))
    torch.testing.assert_close(logits_of(model, data.test.x), before - 1.5 * log_prior / 30.0)
    assert math.isclose(log_prior[0].item(), math.log(40 / 85), rel_tol=1e-6)


def test_posthoc_la_takes_the_scale_of_ldam():
    assert compose(["loss=ldam", "stage2=posthoc_la"]).stage2.logit_scale == 30.0
    assert compose(["loss=ce", "stage2=posthoc_la"]).stage2.logit_scale == 1.0


def test_tau_normalized_hand_worked():
    w = torch.tensor([[3.0, 4.0], [1.0, 0.0]])  # row norms 5 and 1
    torch.testing.assert_close(tau_normalized(w, 1.0), torch.tensor([[0.6, 0.8], [1.0, 0.0]]))
    torch.testing.assert_close(tau_normalized(w, 0.5), torch.tensor([[3 / 5**0.5, 4 / 5**0.5], [1.0, 0.0]]))
    torch.testing.assert_close(tau_normalized(w, 0.0), w)


def test_tau_norm_replaces_the_head_bias_free(trained):
    model, data, trainer, stage1 = fresh(trained)
    weight = model.head.weight.detach().clone()
    feats = model.features(data.test.x[:5]).detach()
    TauNormalization(tau=1.0).apply(model, data, trainer, 0, ev(data, trainer))
    assert model.head.bias is None
    expected = feats @ (weight / weight.norm(dim=1, keepdim=True)).T
    torch.testing.assert_close(logits_of(model, data.test.x[:5]), expected)


def test_tau_norm_auto_selects_on_validation(trained):
    model, data, trainer, stage1 = fresh(trained)
    result = TauNormalization(tau="auto").apply(model, data, trainer, 0, ev(data, trainer))
    tau = result.metrics["stage2/tau"]
    assert tau in TAU_GRID
    chosen = result.metrics["last/val/acc"]
    for t in (0.0, 0.5, 1.0, 2.0):  # a few grid points: none beats the selected tau on validation
        m = copy.deepcopy(trained[0])
        assert (
            TauNormalization(tau=t).apply(m, data, trainer, 0, ev(data, trainer)).metrics["last/val/acc"]
            <= chosen
        )


def test_crt_freezes_features_and_retrains_a_fresh_head(trained):
    model, data, trainer, stage1 = fresh(trained)
    body = {k: v.clone() for k, v in model.body.state_dict().items()}
    head = model.head.weight.detach().clone()
    result = ClassifierRetraining(epochs=2, lr=0.05).apply(model, data, trainer, 0, ev(data, trainer))
    for k, v in model.body.state_dict().items():
        torch.testing.assert_close(v, body[k], rtol=0, atol=0)
    assert isinstance(model.head, nn.Linear) and not torch.allclose(model.head.weight, head)
    assert all(p.requires_grad for p in model.head.parameters())
    assert len(result.history) == 2 and "last/test/acc" in result.metrics


def test_crt_replaces_a_cosine_head_by_a_linear_one(trained):
    model, data, trainer, stage1 = fresh(trained)
    model.head = NormedLinear(model.head.in_features, data.num_classes)
    ClassifierRetraining(epochs=1).apply(model, data, trainer, 0, ev(data, trainer))
    assert type(model.head) is nn.Linear


def test_maxnorm_projection_hand_worked():
    w = torch.tensor([[3.0, 4.0], [0.6, 0.8], [0.0, 2.0]])  # norms 5, 1, 2
    radius = maxnorm_radius(w, 0.25)  # 1 + 0.25 * (5 - 1) = 2
    assert radius == pytest.approx(2.0)
    project_maxnorm(w, radius)
    torch.testing.assert_close(w, torch.tensor([[1.2, 1.6], [0.6, 0.8], [0.0, 2.0]]))


def test_weight_balancing_projects_and_keeps_features(trained):
    model, data, trainer, stage1 = fresh(trained)
    body = {k: v.clone() for k, v in model.body.state_dict().items()}
    radius = maxnorm_radius(model.head.weight, 0.1)
    head = model.head
    WeightBalancing(epochs=2, lr=0.05, thresh=0.1).apply(model, data, trainer, 0, ev(data, trainer))
    assert model.head is head  # fine-tuned, not re-initialised
    assert (model.head.weight.norm(dim=1) <= radius * (1 + 1e-5)).all()
    for k, v in model.body.state_dict().items():
        torch.testing.assert_close(v, body[k], rtol=0, atol=0)
    # the hook is gone once stage 2 is over
    p = nn.Parameter(torch.full((1, 2), 100.0))
    opt = torch.optim.SGD([p], lr=0.0)
    p.sum().backward()
    opt.step()
    assert p.norm() > 100


@pytest.mark.parametrize("name", STAGE2)
@pytest.mark.parametrize("loss", options("loss"))
def test_every_stage2_composes_with_every_loss_on_a_linear_head(name, loss):
    cfg = compose([f"loss={loss}", f"stage2={name}", "model.head=linear"])
    assert isinstance(instantiate(cfg.stage2, _convert_="all"), Stage2)


@pytest.mark.parametrize("name", STAGE2)
def test_cosine_head_is_rejected_only_where_meaningless(name):
    cfg = compose(["loss=ldam", f"stage2={name}"])  # LDAM selects the cosine head
    if name in ("tau_norm", "weight_balancing"):
        with pytest.raises(Exception, match="cosine"):
            instantiate(cfg.stage2, _convert_="all")
    else:
        assert isinstance(instantiate(cfg.stage2, _convert_="all"), Stage2)


def test_impossible_combination_fails_in_preflight(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.preflight(["loss=ldam", "stage2=tau_norm"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "invalid stage2 'tau_norm'" in err and "model.head=linear" in err and "\n" not in err


@pytest.mark.parametrize(
    ("name", "params"),
    [("tau_norm", {"tau": -1}), ("tau_norm", {"tau": "best"}), ("posthoc_la", {"logit_scale": 0}),
     ("crt", {"epochs": 0}), ("weight_balancing", {"thresh": 2.0})],
)  # fmt: skip
def test_invalid_stage2_parameters_raise(name, params):
    node = compose([f"stage2={name}"]).stage2
    for k, v in params.items():
        node[k] = v
    with pytest.raises(Exception, match="must be"):
        instantiate(node, _convert_="all")


def test_no_orphan_stage2():
    named = {t for _, t in all_targets()}
    orphans = [f"{c.__module__}.{c.__qualname__}" for c in _subclasses(Stage2)]
    assert not [o for o in orphans if o not in named]


def test_divergence_in_stage2_is_reported_with_both_histories(trained):
    model, data, trainer, stage1 = fresh(trained)
    with pytest.raises(Diverged) as exc:
        ClassifierRetraining(epochs=2, lr=1e30).run(
            model, data, trainer, 0, stage1=stage1, evaluator=ev(data, trainer)
        )
    epochs = [h["epoch"] for h in exc.value.history]
    assert epochs[: len(stage1.history)] == [h["epoch"] for h in stage1.history]
    assert epochs[len(stage1.history)] == trainer.epochs and exc.value.history[-1]["stage"] == 2


@pytest.mark.parametrize("name", ["posthoc_la", "tau_norm"])
def test_post_hoc_stages_run_without_a_validation_split(name):
    """Paper presets set val_per_class=0: the one evaluator skips the empty split (no torch.cat of nothing)."""
    cfg, choices = small_cfg(["dataset.val_per_class=0", f"stage2={name}"])
    assert run.run_cell(cfg, choices) == "completed"


def test_tau_auto_without_a_validation_split_says_what_to_do(trained):
    model, data, trainer, _ = fresh(trained)
    empty = dataclasses.replace(data, val=Split(data.val.x[:0], data.val.y[:0]))
    with pytest.raises(ValueError, match="validation split, which is empty.*stage2.tau"):
        TauNormalization(tau="auto").apply(model, empty, trainer, 0, ev(empty, trainer))


def test_weight_balancing_projects_through_the_epoch_end_hook_not_an_optimizer_hook(trained):
    from torch.optim.optimizer import _global_optimizer_post_hooks

    model, data, trainer, _ = fresh(trained)
    before = len(_global_optimizer_post_hooks)
    radius = maxnorm_radius(model.head.weight, 0.1)
    WeightBalancing(epochs=2, lr=0.05, thresh=0.1).apply(model, data, trainer, 0, ev(data, trainer))
    assert len(_global_optimizer_post_hooks) == before  # nothing process-wide was registered
    assert (model.head.weight.norm(dim=1) <= radius + 1e-5).all()
