import functools
import math

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from scipy.stats import chisquare

from lossbench.config import compose, options
from lossbench.samplers.by_class import ClassProbabilitySampler
from lossbench.samplers.class_balanced import ClassBalancedSampler
from lossbench.tasks.classification import ClassificationTask, classification_stats

COUNTS = [120, 40, 12, 4, 0, 24]  # one empty class on purpose
SAMPLERS = options("sampler")
EPOCHS = 10  # trainer.epochs the samplers are composed with


def labels(counts=COUNTS, seed=0):
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))]


@functools.cache
def composed(name):
    return OmegaConf.to_container(
        compose([f"sampler={name}", f"trainer.epochs={EPOCHS}"]).sampler, resolve=True
    )


def build(name, **params):
    node = OmegaConf.create(composed(name))
    for k, v in params.items():
        node[k] = v
    sampler = instantiate(node, _convert_="all")
    sampler.fit(ClassificationTask(COUNTS), labels())
    return sampler


def target(sampler, epoch):
    """The class distribution a sampler promises at `epoch` (instance sampling: the counts)."""
    if isinstance(sampler, ClassProbabilitySampler):
        return sampler.class_probabilities(epoch)
    counts = torch.tensor(COUNTS, dtype=torch.float64)
    return counts / counts.sum()


def class_frequencies(sampler, epoch, draws=20):
    y, g = labels(), torch.Generator().manual_seed(123)
    seen = torch.cat([y[sampler.epoch_indices(epoch, g)] for _ in range(draws)])
    return torch.bincount(seen, minlength=len(COUNTS))


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("epoch", [0, EPOCHS // 2, EPOCHS - 1])
def test_class_frequencies_match_the_target(name, epoch):
    sampler = build(name)
    p = target(sampler, epoch)
    assert p.sum().item() == pytest.approx(1.0) and p[4] == 0  # the empty class is never drawn
    seen = class_frequencies(sampler, epoch)
    assert seen[4] == 0
    keep = p > 0
    expected = p[keep] * seen.sum()
    # Seeded, so deterministic; p > 1e-3 would still be passed by a correct sampler 99.9 % of the time.
    assert chisquare(seen[keep].numpy(), expected.numpy()).pvalue > 1e-3


def test_the_frequency_check_has_power():
    sampler = build("class_balanced")
    seen = class_frequencies(sampler, 0)
    counts = torch.tensor(COUNTS, dtype=torch.float64)
    keep = counts > 0
    instance = counts[keep] / counts.sum() * seen.sum()
    assert chisquare(seen[keep].numpy(), instance.numpy()).pvalue < 1e-6


def test_class_balanced_and_sqrt_targets_hand_worked():
    present = torch.tensor([1, 1, 1, 1, 0, 1], dtype=torch.float64) / 5
    torch.testing.assert_close(build("class_balanced").class_probabilities(3), present)
    # sqrt of (120, 40, 12, 4, 0, 24) / sum of the roots
    roots = torch.tensor([120, 40, 12, 4, 0, 24], dtype=torch.float64).sqrt()
    torch.testing.assert_close(build("sqrt").class_probabilities(0), roots / roots.sum())


def test_class_balanced_draws_uniformly_within_a_class():
    y = labels()
    sampler = ClassBalancedSampler()
    sampler.fit(ClassificationTask(COUNTS), y)
    g = torch.Generator().manual_seed(0)
    idx = torch.cat([sampler.epoch_indices(e, g) for e in range(20)])
    head = idx[y[idx] == 0]  # draws of the 120-example class
    hits = torch.bincount(head, minlength=len(y))[y == 0]
    assert chisquare(hits.numpy()).pvalue > 1e-3


def test_progressive_moves_from_instance_to_balanced():
    sampler = build("progressive")
    counts = torch.tensor(COUNTS, dtype=torch.float64)
    instance, balanced = counts / counts.sum(), (counts > 0).double() / 5
    torch.testing.assert_close(sampler.class_probabilities(0), instance)
    # t/T = 3/10: 0.7 * n_c/N + 0.3 / C'
    torch.testing.assert_close(sampler.class_probabilities(3), 0.7 * instance + 0.3 * balanced)
    torch.testing.assert_close(sampler.class_probabilities(EPOCHS), balanced)


def test_progressive_epochs_follow_the_trainer():
    assert compose(["sampler=progressive", "trainer.epochs=90"]).sampler.epochs == 90


def test_drs_is_a_permutation_before_start_epoch():
    sampler = build("drs", start_epoch=4, beta=1.0)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(sampler.epoch_indices(3, g).sort().values, torch.arange(sum(COUNTS)))
    balanced = (torch.tensor(COUNTS) > 0).double() / 5
    torch.testing.assert_close(sampler.class_probabilities(4), balanced)
    assert len(sampler.epoch_indices(4, g).unique()) < sum(COUNTS)  # with replacement from then on


def test_drs_reference_weights_hand_worked():
    # counts (2, 1), beta 0.5: per-example weights (1-b)/(1-b^n) = (2/3, 1); class mass n_c w_c = (4/3, 1)
    sampler = build("drs", start_epoch=0, beta=0.5)
    sampler.fit(*classification_stats([2, 1]))
    torch.testing.assert_close(
        sampler.class_probabilities(0), torch.tensor([4 / 7, 3 / 7], dtype=torch.float64)
    )
    assert compose(["sampler=drs", "trainer.epochs=200"]).sampler.start_epoch == 160


@pytest.mark.parametrize(
    ("name", "params"), [("progressive", {"epochs": 0}), ("drs", {"start_epoch": -1}), ("drs", {"beta": 1.5})]
)
def test_invalid_sampler_parameters_raise(name, params):
    with pytest.raises(Exception, match="must be"):
        build(name, **params)


def test_sqrt_between_instance_and_balanced():
    p = build("sqrt").class_probabilities(0)
    assert p[0] < 120 / 200 and p[3] > 4 / 200 and math.isclose(p.sum().item(), 1.0)
